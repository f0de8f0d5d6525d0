/**
 * @drill     connection-storm
 * @incident  001_e1c418de6e0b326e.txt
 * @summary   a slow database empties the cache; an autoscaler that scales up on latency adds connections until every fill outlives its timeout, and it stays down after the trigger is gone (metastable)
 * @expect    unprotected=broken protected=held
 * @nightly   before=20 observe=40
 * @db        --thread-handling=pool-of-threads
 * @param     rate             number  500                fetches per second (the cache empty, every one is a fill: compare with the capacity)
 * @param     keys             number  200                the hot set: every key is requested a few times a second
 * @param     rows             number  100000             records: the table each fill's work reads
 * @param     fill_ms          number  20                 ms of the database's CPU quota each fill costs: its capacity is 1000/fill_ms fills/s (setup calibrates the work to it)
 * @param     window           number  3                  seconds of one autoscaler window
 * @param     before           number  20                 seconds of steady traffic before the trigger: the recovery rule's reference, long enough for a steady mean
 * @param     trigger          number  30                 seconds the database stays slow: most of the cache expires meanwhile (TTLs of 30-60 s)
 * @param     observe          number  45                 seconds watched after the trigger is removed: the settling time and one recovery window at least
 * @param     recovery_window  number  30                 seconds of one window of the recovery rule (the literature's 30 s, in the short form too; a shorter one is recorded in the result)
 * @param     trigger_latency  number  1500               ms of the latency toxic on the database
 * @param     ttl              number  60                 seconds: entry TTL (each shortened by up to half; warmed with TTLs spread over it: a steady refill)
 * @param     db_timeout       number  300                ms the client waits for a query (the server runs it to the end anyway)
 * @param     max_connections  number  200                the database's max_connections: the fleet at its ceiling wants more (32 x 8 = 256)
 * @param     scale_latency    number  100                ms of mean fetch latency over a window above which the autoscaler scales up
 * @param     recover_within   number  15                 seconds after the trigger's removal by which the protected fleet must have recovered
 * @param     processes        number  4                  processes of the fleet at start
 * @param     pool_size        number  8     protected=1  database connections per process (protected: the pool sheds past them)
 * @param     max_processes    number  32    protected=8  the autoscaler's ceiling (unprotected 32 x 8 = 256 connections for a database that takes 200)
 * @param     retries          number  3                  retries of a failed fill
 *
 * Incident 001: the writer's connection layer fell into a metastable state;
 * the fleets, which scale up aggressively when latency is high, added
 * connections until the database refused logins, its throughput collapsed,
 * and it stayed down after whatever triggered it was gone. Here a latency
 * toxic on the database (the trigger) empties the cache and the autoscaler,
 * seeing high latency, scales the fleet up. Every fill is real work on the
 * database's CPU quota (fillWork, calibrated in setup to fill_ms). The
 * database queues queries (@db: MariaDB's thread pool, in the place of
 * the incident's ProxySQL, which multiplexes the fleet's connections onto
 * a few to the writer, line 8): a few run at a time, the rest wait in
 * order. Once the trigger is removed, most fetches miss: unprotected, the
 * scaled-up fleet's pools hold the database at max_connections (logins
 * past it are refused), every fill waits behind the fills queued before
 * it, well past the client's timeout, and runs anyway once its client has
 * given up; immediate retries queue more, nothing refills the cache, and
 * it stays down. The tipping point is load: below the capacity the queue
 * drains and the cache refills; above it, more clients only lengthen the
 * queue. Protected: bounded pools that shed, retries with backoff, jitter
 * and a 10% budget, and an autoscaler that adds one process at a time
 * keep the queue short enough for each fill to land, and the cache
 * refills within seconds.
 *
 * Why a queue: with a thread per connection (MariaDB's default) the
 * kernel shares the quota among the running fills, and 1-3% of them get
 * enough of it to land within the timeout by chance. Each lands on one of
 * the hottest missing keys and holds it for 30-60 s, so the hit ratio crept
 * back and most unprotected runs left the stuck state 29-43 s after the
 * trigger's removal (2026-12-03: 3 of 4 short runs, and a CI run judged
 * partial), while a queue gives every fill the wait of the whole queue.
 * With the queue, 80 connections held too few fills to keep the database
 * busy (its CPU at 0.6 of the quota, and one run of two still recovered),
 * and with no cap below the fleet's 256 no login was refused; at 200 the
 * fleet holds the database at the cap and its CPU at the quota.
 *
 * The trigger lasts long enough to leave the cache mostly empty and the
 * fleet at its ceiling. With TTLs of 30-60 s, 12 s (the old default) expired
 * only a third of the fetches' keys (hit ratio 0.70 at the trigger's
 * removal in 4 runs of 4, 2026-12-02): the fleet sat at the edge of its
 * stuck state, where the fills that land in the database's idle moments
 * refill the cache (settled hit ratios 0.40-0.85), and a CI run that day
 * never tipped and recovered. 30 s leaves a hit ratio of 0.27-0.41.
 *
 * One replay per generator runs the whole drill, and an autoscaler per
 * generator scales that generator's fleet; the trigger is put in place
 * once. The harness judges recovery by the rule of the metastability
 * literature (options.ext.firedrill.recovery): the first window of
 * recovery_window seconds, from 10 s after the trigger's removal, whose
 * mean fetch latency is within 1.1x the calm before's plus 0.5 ms (the
 * host's noise floor) plus 3 standard errors of the two means (see
 * options) and at most 2% of whose operations were not served; a later
 * unhealthy window is a relapse.
 */
import cache from 'k6/x/cache';
import database from 'k6/x/database';
import toxiproxy from 'k6/x/toxiproxy';
import { sleep } from 'k6';
import {
  at, calibratedWork, cleanupFaults, digest, drill, param, perGenerator, precondition, profile, seed, share, shareCount,
  signature, steady, window,
} from './lib/firedrill.js';

const rate = param('rate');
const keys = param('keys');
const rows = param('rows');
const fillMs = param('fill_ms');
const windowS = param('window');
const beforeS = param('before');
const triggerS = param('trigger');
const observeS = param('observe');
const recoveryWindow = param('recovery_window');
const triggerMs = param('trigger_latency');
const ttlS = param('ttl');
const dbTimeoutMs = param('db_timeout');
const cap = param('max_connections');
const scaleLatencyMs = param('scale_latency');
const recoverWithinS = param('recover_within');
const protectedRun = profile === 'protected';
const processes0 = param('processes');
// Unprotected (the header's defaults): pools of 8 and a fleet that may
// reach 32 (256 connections for a database that takes 200). Protected: pools
// of 1 that shed past 1 query, and a fleet of at most 8: 8 fills at once
// at 20 ms each land well within the 300 ms timeout.
const poolSize = param('pool_size');
const maxProcesses = param('max_processes');
const retries = param('retries');

const totalS = beforeS + triggerS + observeS;

export const options = {
  setupTimeout: '180s',
  scenarios: {
    traffic: perGenerator('0s', 'traffic', `${totalS + 60}s`),
    autoscaler: perGenerator('0s', 'autoscaler', `${totalS + 60}s`),
    trigger_on: at(`${beforeS}s`, 'triggerOn'),
    trigger_off: at(`${beforeS + triggerS}s`, 'triggerOff'),
  },
  // The trigger is the latency toxic on the database (phase "latency");
  // "calm" is the before phase but its first second, whose fetches dial
  // the pools' connections (2.8-6 ms against 1.5-2), and its last 2 s,
  // whose fills the trigger's onset catches; "settled" is the rest of the
  // watch once recover_within has passed.
  //
  // The recovery rule's band is 1.1x calm's mean plus 0.5 ms plus 3
  // standard errors of the two means. A fetch here is mostly a cache hit
  // of 1-2 ms on a shared 2-core host, so 1.1x is 0.2 ms, less than the
  // mean moves between calm and a 30 s window of the same steady traffic:
  // in 8 recovered protected runs (short form, 2026-12-02) the worst
  // window after the settling time was 0.43 ms above a 5 s calm and 0.19
  // ms above a 17 s one (the slack: the host's floor). And the mean is
  // mostly its few misses (4% at rate 100, 20-40 ms each): calm's mean
  // read 2.25 and 3.02 ms in two runs of the same cell (2026-12-04), so
  // the band also allows the means' counting noise (noise_sigmas,
  // measured from each one's 1 s means). A fleet that has not recovered
  // is off by hundreds of ms (every fill times out).
  ext: drill({
    recovery: {
      after: 'latency', reference: 'calm', window: recoveryWindow, settle: 10, latency_factor: 1.1, latency_slack_ms: 0.5,
      noise_sigmas: 3, error_budget: 0.02,
    },
    windows: [
      window('calm', { from: 1, to: beforeS - 2 }),
      window('settled', { after: 'latency', from: recoverWithinS, to: observeS }),
    ],
    checks: [
      precondition('fetches were served before the trigger', 'calm', 'served_ratio >= 0.98'),
      precondition('the cache was warm before the trigger', 'calm', 'hit_ratio >= 0.8'),
      precondition('the database\'s capacity was measured', 'run', 'firedrill_db_capacity > 0'),
      signature('it stays down after the trigger is removed', 'after', 'recovered == 0', '001_e1c418de6e0b326e.txt:18',
        { figure: 'a "metastable" state, left only by failovers and scaling the fleets down' }),
      signature('latencies stay up long after the trigger is gone', 'settled', 'fetch_p99 >= 10 x calm',
        '001_e1c418de6e0b326e.txt:14', { figure: 'errors and latencies spiked across the application for over an hour' }),
      signature('fetches keep failing long after the trigger is gone', 'settled', 'failed_ratio >= 0.05',
        '001_e1c418de6e0b326e.txt:14'),
      // the database's own view: logins refused at its connection cap
      // once the trigger is gone. Judged on the whole watch, not only once
      // it has settled: the fleet holds the cap for the first 25-30 s,
      // and later the queue alone keeps it down, with the connections
      // held (live and abandoned) just under the cap (2026-12-03: refused
      // logins in the first 15 s of 6 unprotected runs of 6, none in the
      // last 20 s of 3 of them; settled served 0.07-0.29 in all 6). A
      // refused login a second on average, not one: a protected fleet's
      // dials that the trigger outlasted end, aborted, in its first
      // moments (1.76 of them, 0.03 a second, in a run at --generators 2),
      // against 5.0-143 a second in the unprotected runs
      signature('the database refuses logins once the trigger is gone', 'after', 'server_db_aborted_connects_rate >= 1', '001_e1c418de6e0b326e.txt:14'),
      steady('it recovers after the trigger is removed', 'after', 'recovered >= 1',
        { figure: 'action: "reduce the velocity of aggressive scale-up policies"' }),
      steady(`it recovers within ${recoverWithinS} s`, 'after', `recovery_s <= ${recoverWithinS}`),
      steady('fetches are served once it has recovered', 'settled', 'served_ratio >= 0.95'),
      steady('fetches are fast once it has recovered', 'settled', 'fetch_p99 <= 2 x calm + 10'),
      steady('the database refuses no login once it has recovered', 'settled', 'server_db_aborted_connects == 0'),
    ],
  }),
};

// The app's retry layer and the pools: the protections are bounded pools
// that shed (dbLimit), and a retry budget with backoff and jitter.
function appOptions() {
  if (protectedRun) {
    return {
      poolSize, retries,
      protections: { ttlJitter: 0.5, dbLimit: poolSize, retryBudget: 0.1, retryBackoff: '50ms', retryJitter: true },
    };
  }
  return { poolSize, retries, protections: { ttlJitter: 0.5 } };
}

export function setup() {
  cache.seed({ rows, seed });
  const { fillWork, capacity } = calibratedWork(cache, { rows, keys, hotSet: keys, seed }, fillMs);
  console.log(`connection-storm: offered ${rate}/s = ${(rate / capacity).toFixed(1)}x the capacity when the cache is empty`);
  database.capConnections(cap);
  return { fillWork };
}

export function traffic(data) {
  // Every refill's TTL drawn in [ttl/2, ttl], and the cache warm at start
  // in that steady state (warmSpread): keys expire and refill one by one,
  // well within the capacity, at the same rate before the trigger as
  // after it.
  const s = cache.replay(Object.assign({
    rate: share(rate), rows, keys, warm: keys, warmSpread: true, hotSet: keys, ttl: `${ttlS}s`, seed, processes: shareCount(processes0),
    arrivals: 'poisson', duration: `${totalS + 5}s`, fillWork: data.fillWork, dbTimeout: `${dbTimeoutMs}ms`,
    cacheTimeout: '1s', maxInflight: 8192,
  }, appOptions()));
  console.log(digest(`connection-storm (${profile}) replay`, s) + `, retries ${s.retries}, denied ${s.retriesDenied}, processes ${s.processes}`);
}

// latency reads this generator's fetches answered and their latency sum.
function latency() {
  const st = cache.status();
  if (!st.running) return null;
  return { n: st.fetchesAnswered || 0, sumMs: st.fetchLatencySumMs || 0 };
}

// The autoscaler of this generator's fleet, as incident 001's scaled: when
// a window's mean fetch latency is above scale_latency, it doubles the
// fleet (unprotected) or adds one process (protected: the incident's
// action item, a slower scale-up), up to its share of max_processes; it
// never scales down while the drill watches.
export function autoscaler() {
  let prev = null;
  for (let i = 0; i < 300 && !(prev && prev.n > 0); i++) {
    sleep(0.1);
    prev = latency();
  }
  if (!prev) throw new Error('connection-storm: the replay did not start');
  let p = shareCount(processes0);
  const ceiling = shareCount(maxProcesses);
  for (let t = windowS; t <= totalS; t += windowS) {
    sleep(windowS);
    const now = latency();
    if (!now) return; // the replay ended
    const n = now.n - prev.n;
    const mean = n > 0 ? (now.sumMs - prev.sumMs) / n : Infinity;
    prev = now;
    if (mean > scaleLatencyMs) {
      const next = Math.min(ceiling, protectedRun ? p + 1 : p * 2);
      if (next !== p) cache.scale({ processes: next, name: 'autoscaler' });
      p = next;
    }
  }
}

const proxy = __ENV.FIREDRILL_MYSQL_PROXY || 'mysql';

// Trigger: the database is slow; fills time out and the cache empties.
export function triggerOn() {
  toxiproxy.addToxic(proxy, { name: 'trigger', type: 'latency', attributes: { latency: triggerMs } });
}

export function triggerOff() {
  toxiproxy.removeToxic(proxy, 'trigger');
}

export function teardown() {
  database.cleanup();
  cleanupFaults();
}
