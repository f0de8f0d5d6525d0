/**
 * @drill     cache-format-flip
 * @incident  000_e76083ecc6911798.txt
 * @summary   a rolling cache format flip makes old processes miss on new entries (+20-30% DB load, sustained), then the hot set expires at once: a query spike, connections at the cap
 * @expect    unprotected=broken protected=held
 * @nightly   steady=105 ramp=40 flipped=95 expiry=12
 * @param     rate             number  1000   fetches per second
 * @param     rows             number  20000  records, all cached in the steady phase
 * @param     steady           number  105    seconds of the steady phase (the first 10 a warm-up)
 * @param     ramp             number  40     seconds after the flip before the flipped phase is judged: the rise is slow, as the incident says
 * @param     flipped          number  95     seconds of the flipped phase (judged)
 * @param     expiry           number  12     seconds of the expiry phase
 * @param     expiry_ttl       number  8      seconds: TTL of the hot set in the expiry phase
 * @param     flip_fraction    number  0.26   share of the fleet on the new format while it is mixed (calibrated once to the incident's +25%)
 * @param     hot_set          number  500    hottest records, read-only, refilled together in the expiry phase and left to expire
 * @param     processes        number  16     processes of the fleet
 * @param     pool_size        number  2      database connections per process, both profiles: 32 over the fleet, above max_connections (one stays open unused, a second closes when its query ends)
 * @param     pool_idle        number  2      seconds an idle pooled connection stays open (Rails reaps idle ones), so connections open follow the load
 * @param     max_connections  number  24     the database's max_connections
 * @param     fill_ms          number  4.75   ms of the database's CPU quota each fill costs (setup calibrates the work to it): capacity 1000/fill_ms fills/s, 6x the flipped load
 * @param     write_fraction   number  0.03   share of operations that are invalidating writes: the steady database load
 *
 * Incident 000: a cache format change made part of the fleet miss on the
 * other part's entries, so steady database load rose by about a quarter,
 * slowly, and stayed up for hours; then very hot keys expired together and
 * their misses sent a query burst that hit the connection limit (errors
 * 1040, outages). As in Rails, the new format's readers decode old entries
 * and the old readers miss on new ones: the rise is the new processes'
 * refills that old ones then read and refill again, so it grows with the
 * share of the fleet on the new format (flip_fraction, calibrated once at
 * fill_ms 3 with the steady-state warm, 2026-12-04: 0.21 read +18.7%, 0.26
 * +23.8% and +23.9% in two runs) and settles over tens of seconds (the
 * median written key is next read ~27 s later), hence the ramp.
 *
 * A fill is real work on the database's CPU quota (fillWork, calibrated in
 * setup to fill_ms; no SLEEP). Both profiles run the same pools: 2 per
 * process, 32 over the fleet, above max_connections as the incident's
 * were. A process keeps one connection open (closed after pool_idle
 * unused) and closes a second one when its query ends, so the connections
 * open are one per process plus the fills running beside it: the cap is
 * met only when load makes fills queue.
 *
 * The database serves 1000/fill_ms fills a second, six times the flipped
 * load: the flip's extra quarter is well within it, as the incident says,
 * and the hot set's expiry is not. Unprotected, that expiry asks for about
 * 190 fills in its first second and over 400/s in its first tenth (the hot
 * set's keys read then, each missed by every process that reads it before
 * its fill lands), so fills queue, a queued fill lets more readers of its
 * key miss, every pool opens its second connection and the cap refuses
 * logins: the incident's "query times massively increase, connections
 * maxed out". The capacity is bounded both ways: a saturated database
 * serves 0.91-0.94 of it, which must stay past 5x the flipped rate (167),
 * and the expiry must outrun it. Measured 2026-12-04 (one seed): capacity
 * 191 fills/s, 177 logins refused (spike 179); 206, 117 (spike 187); 220,
 * 118 (spike 200); 252, 22, where the refusals are a race again. Hence 4.75 ms, and calibration
 * within 5%. Until 2026-12-04 fill_ms was 3 and the fill's work could not
 * read the table more than once: the capacity stayed at ~390 fills/s,
 * twice the spike, and logins were refused only when second connections,
 * kept open for pool_idle, happened to pile up (0-124 refusals in runs of
 * one seed, and 7 in one protected steady phase).
 *
 * The warm leaves out the share of entries that the steady writes keep
 * invalidated (warmAbsent = write share), so the steady refill rate starts
 * where it stays.
 *
 * Protected: readers of both formats (compatRead), one filler per key over
 * the fleet (memcached leases) and per process (coalescing), and TTL jitter
 * on fills and on the hot set's refill, so the flip costs no load and the
 * hot set expires over seconds instead of in one: its fills stay about
 * half the database's capacity, so they do not queue.
 *
 * Band sizing (the flip's rise is judged in [1.2, 1.3] x before, on the
 * database's own count of the traffic user's SELECTs): counts are about
 * Poisson, so the ratio r = A/B has sigma r * sqrt(1/B + 1/A). At 27
 * SELECTs/s before and 33/s flipped (2026-12-03), a band 0.1 wide is 3
 * sigma when 1/B + 1/A <= (0.1 / 3 / 1.25)^2 = 7.1e-4, i.e. 95 s of each
 * window: before is judged over steady - 10 s, flipped over flipped s.
 * The short form keeps these lengths. With the run's fixed seed the
 * arrivals and keys repeat, so runs differ far less than that noise:
 * before read 26.89-26.94/s in five runs of both profiles, and
 * unprotected flipped 33.31 and 33.35/s in two.
 */
import cache from 'k6/x/cache';
import database from 'k6/x/database';
import { sleep } from 'k6';
import {
  at, calibratedWork, cleanupFaults, digest, drill, markFault, param, perGenerator, precondition, profile, seed, share,
  shareCount, signature, steady, window,
} from './lib/firedrill.js';

const rate = param('rate');
const rows = param('rows');
const steadyS = param('steady');
const rampS = param('ramp');
const flipS = param('flipped');
const expiryS = param('expiry');
const expiryTTL = param('expiry_ttl');
const flipFraction = param('flip_fraction');
const hotSet = param('hot_set');
const processes = param('processes');
const protectedRun = profile === 'protected';
const poolSize = param('pool_size');
const poolIdleS = param('pool_idle');
const cap = param('max_connections');
const fillMs = param('fill_ms');
const writeFraction = param('write_fraction');
const mixedS = rampS + flipS + expiryS;

export const options = {
  setupTimeout: '180s',
  scenarios: {
    traffic: perGenerator('0s', 'traffic', `${steadyS + mixedS + 60}s`),
    // each generator flips its own fleet, and flips it back at the end
    flip: perGenerator(`${steadyS}s`, 'flip', `${mixedS + 60}s`),
    // the hot set lives on the shared servers: refilled once
    expiry: Object.assign(at(`${steadyS + rampS + flipS}s`, 'expiry'), { maxDuration: `${expiryS + 60}s` }),
  },
  // Phases: before (steady, after a 10 s warm-up), format_flip (from the
  // flip to the end: the fleet stays mixed), "flipped" (the flip's settled
  // part: after the ramp, before the expiry) and hot_set_expiry (from the
  // refill).
  ext: drill({
    warmup: 10,
    windows: [window('flipped', { of: 'format_flip', from: rampS, to: rampS + flipS })],
    checks: [
      precondition('the cache was warm before the flip', 'before', 'hit_ratio >= 0.8'),
      precondition('the database\'s capacity was measured', 'run', 'firedrill_db_capacity > 0'),
      // the pools (32, both profiles) exceed max_connections (24): the cap
      // is met only when load makes fills queue
      precondition('the database refused nothing before the flip', 'before', 'server_db_aborted_connects == 0'),
      signature('steady database load rises by a quarter after the flip', 'flipped',
        'server_db_user_select_rate >= 1.2 x before', '000_e76083ecc6911798.txt:4',
        { figure: 'about 25% extra query load on the primary, sustained for hours' }),
      signature('...and by no more than 30%', 'flipped', 'server_db_user_select_rate <= 1.3 x before',
        '000_e76083ecc6911798.txt:4'),
      signature('the hot set\'s expiry sends a query spike', 'hot_set_expiry',
        'server_db_user_select_rate_peak >= 5 x server_db_user_select_rate@flipped', '000_e76083ecc6911798.txt:5',
        { figure: 'very hot keys expired at once: a burst of queries' }),
      // Judged on the database's own count of refused logins
      // (Aborted_connects; Connection_errors_max_connections counts only
      // those past the administrator's spare connection).
      signature('connections max out when the hot set expires', 'hot_set_expiry',
        'server_db_aborted_connects >= 1', '000_e76083ecc6911798.txt:5',
        { figure: 'connections maxed out on the primary, health checks failed: 7 outages of 1-5 min' }),
      steady('the flip costs the database little', 'flipped', 'server_db_user_select_rate <= 1.1 x before',
        { figure: 'rolled back, the format change "immediately stabilized things"' }),
      steady('the hot set\'s expiry sends no spike', 'hot_set_expiry',
        'server_db_user_select_rate_peak <= 5 x server_db_user_select_rate@flipped'),
      steady('the database never refuses connections', 'run', 'server_db_aborted_connects == 0'),
      steady('fetches are served through the expiry', 'hot_set_expiry', 'served_ratio >= 0.99'),
      // and not by waiting: a protection that holds fills back must not
      // trade the database's load for the fleet's latency
      steady('fetches stay as fast through the expiry', 'hot_set_expiry', 'fetch_p99 <= 2 x before + 10'),
    ],
  }),
};

function protections() {
  if (!protectedRun) return {};
  // Readers of both formats, one filler per key (memcached leases, and
  // coalescing inside a process) and TTL jitter. No dbLimit: shedding
  // fills would hold the database by not serving.
  return { compatRead: true, leases: true, leaseTries: 50, coalesce: true, ttlJitter: 0.75 };
}

const replayOpts = { rows, keys: rows, hotSet, hotSetReadOnly: true, seed };

export function setup() {
  cache.seed({ rows, seed });
  database.capConnections(cap);
  const { fillWork, capacity } = calibratedWork(cache, replayOpts, fillMs);
  // Every record cached, less those the steady writes keep invalidated
  // (each key absent w / (r + w) of the time; the hot set is read-only).
  cache.warm(Object.assign({}, replayOpts, {
    warm: rows, ttl: '3600s', warmAbsent: writeFraction, protections: protections(),
  }));
  return { fillWork, capacity };
}

export function traffic(data) {
  const s = cache.replay(Object.assign({}, replayOpts, {
    rate: share(rate), processes: shareCount(processes), poolSize, poolIdleConns: 1, poolIdle: `${poolIdleS}s`, warm: 0,
    ttl: '3600s',
    duration: `${steadyS + mixedS + 1}s`, fillWork: data.fillWork, dbTimeout: '5s', cacheTimeout: '1s', writeFraction,
    protections: protections(),
  }));
  console.log(digest(`cache-format-flip (${profile})`, s));
}

export function flip() {
  cache.flipFormat({ fraction: flipFraction, name: 'rolling deploy' });
  sleep(mixedS);
  cache.flipFormat({ fraction: 0, name: 'rolling deploy' });
}

// The hot set is refilled with one short TTL (shaped by the protections'
// jitter) and left to expire.
export function expiry() {
  markFault('hot_set_expiry', 'inject', `top-${hotSet}`);
  cache.refillHotSet({ keys: hotSet, ttl: `${expiryTTL}s` });
  sleep(expiryS);
  markFault('hot_set_expiry', 'remove', `top-${hotSet}`);
}

export function teardown() {
  database.cleanup();
  cleanupFaults();
}
