/**
 * @drill     cache-format-flip
 * @incident  000_e76083ecc6911798.txt
 * @summary   a rolling cache format flip makes entries miss (+DB load), then the hot set expires at once: query spike, connections at the cap
 * @expect    unprotected=broken protected=held
 * @nightly   steady=8 flipped=8 expiry=12
 * @param     rate             number  500                 fetches per second
 * @param     rows             number  20000               records, all cached in the steady phase
 * @param     steady           number  15                  seconds of the steady phase
 * @param     flipped          number  15                  seconds of the flipped phase
 * @param     expiry           number  15                  seconds of the expiry phase
 * @param     expiry_ttl       number  8                   seconds: TTL of the hot set (and of fills) in the expiry phase
 * @param     flip_fraction    number  0.125               share of the fleet on the new format
 * @param     hot_set          number  500                 entries refilled together in the expiry phase and left to expire
 * @param     processes        number  16                  processes of the fleet
 * @param     pool_size        number  2      protected=1  database connections per process: unprotected, processes x pool_size > max_connections; protected, one each, under the cap
 * @param     max_connections  number  24                  the database's max_connections, low so that a burst reaches it
 * @param     query_delay      number  50                  ms of database time per fill: the expiry's stampede holds connections this long
 * @param     write_fraction   number  0.05                share of updates that invalidate entries: the steady database load
 *
 * Incident 000: a cache format change made part of the fleet miss on the
 * other part's entries, so steady database load rose by about a quarter;
 * hours later very hot keys expired together and their misses sent a query
 * burst that hit the connection limit (errors 1040, outages). Protected, the
 * readers decode both formats (compatRead), one client fills each key (fill
 * lock via memcached leases, plus coalescing), TTLs carry jitter and each
 * process runs one query at a time (shedding the rest), so the flip costs no
 * load and the expiry never reaches the connection limit.
 *
 * Three phases of one fleet, each one replay tagged phase=...: steady (every
 * record cached, 5% of operations writes whose invalidations and refills
 * are the steady database load), flipped (flipFraction of the fleet on the
 * new format) and expiry (the hot set refilled with a short TTL and left
 * to expire together, the fleet still mixed). max_connections is capped low
 * so a burst reaches it (the unprotected fleet's pools could open more).
 * Measured here, unprotected: 38 -> 130 queries/s after the flip (the ping-
 * pong between the two formats of a hot entry makes it more than the
 * incident's quarter) and about 90 refusals in the expiry phase; protected:
 * +6 queries per 1000 fetches and no refusal.
 */
import cache from 'k6/x/cache';
import database from 'k6/x/database';
import { Gauge } from 'k6/metrics';
import {
  cleanupFaults, digest, dbRate, drill, inPhase, logTable, markFault, param, precondition, profile, seed, signature, steady, window,
} from './lib/firedrill.js';

const rate = param('rate');
const rows = param('rows');
const steadyS = param('steady');
const flipS = param('flipped');
const expiryS = param('expiry');
const expiryTTL = param('expiry_ttl');
const flip = param('flip_fraction');
const hotSet = param('hot_set');
const processes = param('processes');
const protectedRun = profile === 'protected';
const poolSize = param('pool_size');
const cap = param('max_connections');
const queryDelayMs = param('query_delay');
const writeFraction = param('write_fraction');

// Database queries per 1000 fetches the flip added (flipped minus steady).
const flipExtra = new Gauge('firedrill_flip_extra_db_per_1000');
// Database queries per 1000 fetches in each phase, for the report.
const perPhase = new Gauge('firedrill_db_per_1000');
// The flip's rise of database load over the steady phase (0.25 = +25%).
const flipRise = new Gauge('firedrill_flip_db_rise');

export const options = {
  setupTimeout: '120s',
  scenarios: {
    traffic: {
      executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'traffic',
      maxDuration: `${steadyS + flipS + expiryS + 90}s`,
    },
  },
  // Phases: before (the steady replay), format_flip (from the flip to the
  // end: the fleet stays mixed), hot_set_expiry (the expiry replay), and
  // "flipped", the flip's first replay before the expiry.
  ext: drill({
    windows: [window('flipped', { of: 'format_flip', from: 0, to: flipS })],
    checks: [
      precondition('the load was served before the flip', 'before', 'served_ratio >= 0.98'),
      precondition('the cache was warm before the flip', 'before', 'hit_ratio >= 0.8'),
      signature('steady database load rises after the flip', 'flipped', 'db_rate >= 1.2 x before',
        '000_e76083ecc6911798.txt:4'),
      signature('connections max out when the hot set expires', 'hot_set_expiry',
        'errors{class=too_many_connections} >= 1', '000_e76083ecc6911798.txt:5'),
      steady('the flip costs the database little', 'flipped', 'db_rate <= 1.1 x before + 5'),
      steady('the database never refuses connections', 'run', 'errors{class=too_many_connections} == 0'),
      steady('fetches are served through the expiry', 'hot_set_expiry', 'served_ratio >= 0.98'),
    ],
  }),
};

function protections() {
  if (!protectedRun) return {};
  // Readers of both formats, one filler per key (memcached leases, and
  // coalescing inside a process), TTL jitter, and at most one database
  // query at a time per process (the rest is shed, not queued).
  return { compatRead: true, leases: true, leaseTries: 50, coalesce: true, ttlJitter: 0.5, dbLimit: 1 };
}

function replayOpts(extra) {
  return Object.assign({
    rate, rows, keys: rows, hotSet, processes, poolSize, seed,
    queryDelay: `${queryDelayMs}ms`, cacheTimeout: '1s', writeFraction, protections: protections(),
  }, extra);
}

const per1000 = (s) => (1000 * s.dbQueries) / Math.max(s.fetches, 1);

export function setup() {
  cache.seed({ rows, seed });
  database.capConnections(cap);
}

export function traffic() {
  const steady = inPhase('steady', () => cache.replay(replayOpts({ duration: `${steadyS}s`, warm: rows, ttl: '600s' })));
  console.log(digest('steady', steady));

  markFault('format_flip', 'inject', 'fleet', `${flip}`);
  const flipped = inPhase('flipped', () => cache.replay(replayOpts({ duration: `${flipS}s`, warm: 0, ttl: '600s', flipFraction: flip })));
  console.log(digest('flipped', flipped));

  // The hot set is refilled with one short TTL and left to expire together.
  markFault('hot_set_expiry', 'inject', `top-${hotSet}`);
  const expiry = inPhase('expiry', () => cache.replay(replayOpts({
    duration: `${expiryS}s`, warm: hotSet, ttl: `${expiryTTL}s`, flipFraction: flip,
  })));
  markFault('hot_set_expiry', 'remove', `top-${hotSet}`);
  markFault('format_flip', 'remove', 'fleet', `${flip}`);
  console.log(digest('expiry', expiry));

  flipExtra.add(per1000(flipped) - per1000(steady));
  flipRise.add(per1000(flipped) / Math.max(per1000(steady), 1e-9) - 1);
  const phases = { steady, flipped, expiry };
  for (const [name, s] of Object.entries(phases)) perPhase.add(per1000(s), { phase: name });
  logTable(`cache-format-flip (${profile}): database load per phase`, Object.entries(phases).map(([name, s]) => ({
    phase: name, db_per_s: dbRate(s), db_per_1000_fetches: per1000(s),
    hit_ratio: s.hitRatio, fetch_p99_ms: s.fetchP99Ms, errors: JSON.stringify(s.errors),
  })));
}

export function teardown() {
  database.cleanup();
  cleanupFaults();
}
