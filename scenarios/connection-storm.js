/**
 * @drill     connection-storm
 * @incident  001_e1c418de6e0b326e.txt
 * @summary   a slow database empties the cache; unbounded pools, retries and an aggressive autoscaler hold it at max_connections and it stays down after the trigger is gone (metastable)
 * @expect    unprotected=broken protected=held
 * @nightly   before=6 observe=21 recovery_window=10
 * @param     rate             number  500                fetches per second
 * @param     keys             number  60                 the hot set: every key is requested every second or so
 * @param     window           number  3                  seconds of one measurement (and autoscaler) window
 * @param     before           number  9                  seconds of steady traffic before the trigger
 * @param     trigger          number  12                 seconds the database stays slow (> ttl: the cache empties)
 * @param     observe          number  45                 seconds watched after the trigger is removed: the settling time and one recovery window at least
 * @param     recovery_window  number  30                 seconds of one window of the recovery rule (the literature's 30 s; the short form's is shorter)
 * @param     trigger_latency  number  1500               ms of the latency toxic on the database
 * @param     ttl              number  10                 seconds: entry TTL (each shortened by up to half: a steady refill)
 * @param     contention       number  20                 ms of database time per fill per running query: throughput 1000/20 = 50 fills/s
 * @param     query_delay      number  0                  fixed ms of database time per fill on top (a SLEEP whose cost does not grow with load)
 * @param     db_timeout       number  1000               ms the client waits for a query
 * @param     max_connections  number  80                 the database's max_connections: contention x cap > db_timeout, so at the cap every query times out
 * @param     recover_within   number  20                 seconds after the trigger's removal by which the protected fleet must have recovered
 * @param     processes        number  4                  processes of the fleet at start
 * @param     pool_size        number  8     protected=2  database connections per process (protected: the pool sheds past them)
 * @param     max_processes    number  32    protected=8  the autoscaler's ceiling (unprotected 32 x 8 = 256 connections for a database that takes 80)
 * @param     retries          number  3                  retries of a failed fill
 *
 * Incident 001: the writer's connection layer fell into a metastable state;
 * aggressive scale-up added connections until the database refused them,
 * and it stayed down after the trigger was gone. Here a latency toxic on the
 * database (the trigger) empties the cache; once it is removed, unbounded
 * pools, immediate retries and an autoscaler that doubles the fleet hold the
 * database at max_connections, where every fill (whose cost grows with the
 * queries running: queryContention) outlives the client's timeout and
 * nothing refills: it stays down, with timeouts and too_many_connections.
 * Protected: bounded pools that shed, retries with exponential backoff,
 * jitter and a 10% budget, and a gentle scale-up keep fills short enough to
 * land, and the cache refills within seconds.
 *
 * One replay per generator runs the whole drill, and an autoscaler per
 * generator scales that generator's fleet; the trigger is put in place
 * once. The harness judges recovery by the rule of the metastability
 * literature (options.ext.firedrill.recovery): the first window of
 * recovery_window seconds, from 10 s after the trigger's removal, whose
 * mean fetch latency is within 1.1x the before phase's and at most 2% of
 * whose operations were not served; a later unhealthy window is a relapse.
 */
import cache from 'k6/x/cache';
import database from 'k6/x/database';
import toxiproxy from 'k6/x/toxiproxy';
import { sleep } from 'k6';
import {
  at, cleanupFaults, digest, drill, param, perGenerator, precondition, profile, seed, share, shareCount, signature, steady, window,
} from './lib/firedrill.js';

const rate = param('rate');
const keys = param('keys');
const windowS = param('window');
const beforeS = param('before');
const triggerS = param('trigger');
const observeS = param('observe');
const recoveryWindow = param('recovery_window');
const triggerMs = param('trigger_latency');
const ttlS = param('ttl');
const contentionMs = param('contention');
const queryDelayMs = param('query_delay');
const dbTimeoutMs = param('db_timeout');
const cap = param('max_connections');
const recoverWithinS = param('recover_within');
const protectedRun = profile === 'protected';
const processes0 = param('processes');
// Unprotected (the header's defaults): pools of 8 and a fleet that may
// reach 32 (256 connections for a database that takes 80). Protected: pools
// of 2 that shed past 2 queries, and a fleet of at most 8 (16 queries:
// 16 x 20 ms, far below 1 s).
const poolSize = param('pool_size');
const maxProcesses = param('max_processes');
const retries = param('retries');

const totalS = beforeS + triggerS + observeS;

export const options = {
  setupTimeout: '120s',
  scenarios: {
    traffic: perGenerator('0s', 'traffic', `${totalS + 60}s`),
    autoscaler: perGenerator('0s', 'autoscaler', `${totalS + 60}s`),
    trigger_on: at(`${beforeS}s`, 'triggerOn'),
    trigger_off: at(`${beforeS + triggerS}s`, 'triggerOff'),
  },
  // The trigger is the latency toxic on the database (phase "latency");
  // "settled" is the rest of the watch once recover_within has passed.
  ext: drill({
    recovery: { after: 'latency', window: recoveryWindow, settle: 10, latency_factor: 1.1, error_budget: 0.02 },
    windows: [window('settled', { after: 'latency', from: recoverWithinS, to: observeS })],
    checks: [
      precondition('fetches were served before the trigger', 'before', 'served_ratio >= 0.98'),
      precondition('the cache was warm before the trigger', 'before', 'hit_ratio >= 0.8'),
      signature('it stays down after the trigger is removed', 'after', 'recovered == 0', '001_e1c418de6e0b326e.txt:18'),
      signature('the fleet keeps failing once the trigger is gone', 'settled', 'served_ratio <= 0.5 x before',
        '001_e1c418de6e0b326e.txt:18'),
      steady('it recovers after the trigger is removed', 'after', 'recovered >= 1'),
      steady(`it recovers within ${recoverWithinS} s`, 'after', `recovery_s <= ${recoverWithinS}`),
      steady('fetches are served once it has recovered', 'settled', 'served_ratio >= 0.95'),
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
  cache.seed({ rows: keys, seed });
  database.capConnections(cap);
}

export function traffic() {
  // Every key warm at start; TTLs drawn in [ttl/2, ttl] so the steady
  // state refills a few keys a second, well within the database's
  // throughput.
  const s = cache.replay(Object.assign({
    rate: share(rate), rows: keys, keys, warm: keys, hotSet: keys, ttl: `${ttlS}s`, seed, processes: shareCount(processes0), arrivals: 'poisson',
    duration: `${totalS + 5}s`, queryContention: `${contentionMs}ms`, queryDelay: `${queryDelayMs}ms`, dbTimeout: `${dbTimeoutMs}ms`,
    cacheTimeout: '1s', maxInflight: 8192,
  }, appOptions()));
  console.log(digest(`connection-storm (${profile}) replay`, s) + `, retries ${s.retries}, denied ${s.retriesDenied}, processes ${s.processes}`);
}

// counts reads this generator's replay's totals so far.
function counts() {
  const st = cache.status();
  if (!st.running) return null;
  const c = st.counters || {};
  let errors = 0;
  for (const v of Object.values(st.opErrors || {})) errors += v;
  return { fetches: c.cache_fetches || 0, errors };
}

// The autoscaler of this generator's fleet: after a window in which more
// than 5% of its fetches failed (timed out, refused) it doubles the fleet
// (unprotected) or adds one process (protected), up to its share of
// max_processes; it never scales down while the drill watches.
export function autoscaler() {
  let prev = null;
  for (let i = 0; i < 300 && !(prev && prev.fetches > 0); i++) {
    sleep(0.1);
    prev = counts();
  }
  if (!prev) throw new Error('connection-storm: the replay did not start');
  let p = shareCount(processes0);
  const ceiling = shareCount(maxProcesses);
  for (let t = windowS; t <= totalS; t += windowS) {
    sleep(windowS);
    const now = counts();
    if (!now) return; // the replay ended
    const fetches = now.fetches - prev.fetches;
    const errors = now.errors - prev.errors;
    prev = now;
    if (errors > 0.05 * fetches) {
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
