/**
 * @drill     connection-storm
 * @incident  001_e1c418de6e0b326e.txt
 * @summary   a slow database empties the cache; unbounded pools and an aggressive autoscaler keep it down after the trigger is gone (metastable)
 * @expect    unprotected=broken protected=held
 *
 * Incident 001: the writer's connection layer fell into a metastable state;
 * aggressive scale-up added connections until the database refused them,
 * and only scaling the fleet to zero recovered it. Here a latency toxic on
 * the database (the trigger) kills every fill, the cache drains, and once
 * the toxic is gone the cold cache's misses queue on the pools past the
 * query timeout: queries are killed before they refill anything, so the
 * overload sustains itself while the autoscaler doubles the fleet on every
 * slow window. Protected: small bounded pools that shed instead of queueing,
 * coalesced fills and a gentle scale-up let fills land and the system
 * recover. The drill measures whether and how fast it recovers after the
 * trigger is removed and pushes firedrill_recovered (1/0) and
 * firedrill_recovery_s (seconds from the removal to the first recovered
 * window) as gauges.
 */
import cache from 'k6/x/cache';
import database from 'k6/x/database';
import toxiproxy from 'k6/x/toxiproxy';
import { Gauge } from 'k6/metrics';
import { cleanupFaults, digest, inPhase, logTable, param, profile, seed } from './lib/firedrill.js';

const rate = param('rate', 500); // fetches per second
const rows = param('rows', 20000);
const windowS = param('window', 3); // s: one measurement (and autoscaler) window
const beforeS = param('before', 9); // s of steady traffic before the trigger
const triggerS = param('trigger', 12); // s the database stays slow
const observeS = param('observe', 30); // s watched after the trigger is removed
const triggerMs = param('trigger_latency', 1500); // latency toxic on the database
const queryDelayMs = param('query_delay', 300); // database time per fill
const ttlS = param('ttl', 8); // entry TTL: the cache drains while fills fail
const cap = param('max_connections', 40);
const maxProcesses = param('max_processes', 32);
const protectedRun = profile === 'protected';
const processes0 = param('processes', 4);
const poolSize = param('pool_size', protectedRun ? 2 : 8);

const recovered = new Gauge('firedrill_recovered');
const recoverySeconds = new Gauge('firedrill_recovery_s');

export const options = {
  setupTimeout: '120s',
  scenarios: {
    traffic: {
      executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'traffic',
      maxDuration: `${beforeS + triggerS + observeS + 120}s`,
    },
  },
  thresholds: {
    // The hypothesis: once the trigger is gone the system recovers, and
    // within 20 s.
    firedrill_recovered: ['value>0'],
    firedrill_recovery_s: ['value<20'],
    cache_hits: ['count>0'],
  },
};

function protections() {
  // Bounded: at most 2 queries per process, the rest shed at once; one fill
  // per key per process.
  return protectedRun ? { dbLimit: 2, coalesce: true } : {};
}

// The autoscaler: double the fleet after a window whose median fetch was
// slow (unprotected), or add one process (protected); never scale down while
// watching.
function autoscale(p, s, slowMs) {
  if (s.fetchP50Ms <= slowMs) return p;
  return Math.min(maxProcesses, protectedRun ? p + 1 : p * 2);
}

export function setup() {
  cache.seed({ rows, seed });
  database.capConnections(cap);
}

export function traffic() {
  let p = processes0;
  const win = (phase, extra) => inPhase(phase, () => cache.replay(Object.assign({
    rate, rows, keys: rows, warm: 0, ttl: `${ttlS}s`, seed, processes: p, poolSize,
    queryDelay: `${queryDelayMs}ms`, dbTimeout: '1s', cacheTimeout: '1s', protections: protections(),
  }, extra)));
  const rowsOut = [];
  const log = (phase, t, s) => {
    rowsOut.push({ t, phase, processes: p, hit_ratio: s.hitRatio, db_per_s: s.dbQueries / s.elapsedS,
      fetch_p50_ms: s.fetchP50Ms, fetch_p99_ms: s.fetchP99Ms, errors: JSON.stringify(s.errors) });
  };

  // Steady: every record cached.
  const steady = win('before', { duration: `${beforeS}s`, warm: rows });
  console.log(digest('before', steady));
  log('before', 0, steady);
  const slowMs = param('slow', 100); // ms: a median fetch slower than this scales the fleet
  const okErrors = (s) => Object.entries(s.errors || {}).reduce((n, [, v]) => n + v, 0) <= 0.02 * s.operations;
  const healthy = (s) => s.hitRatio >= 0.8 * steady.hitRatio && okErrors(s);

  // Trigger: the database is slow for triggerS; fills time out.
  const proxy = __ENV.FIREDRILL_MYSQL_PROXY || 'mysql';
  toxiproxy.addToxic(proxy, { name: 'trigger', type: 'latency', attributes: { latency: triggerMs } });
  let t = 0;
  while (t < triggerS) {
    const s = win('trigger', { duration: `${windowS}s` });
    t += windowS;
    log('trigger', t, s);
    p = autoscale(p, s, slowMs);
  }
  toxiproxy.removeToxic(proxy, 'trigger');

  // Watch: is it back, and when?
  let rec = -1;
  t = 0;
  while (t < observeS) {
    const s = win('after', { duration: `${windowS}s` });
    t += windowS;
    log('after', t, s);
    if (healthy(s)) {
      rec = t;
      break;
    }
    p = autoscale(p, s, slowMs);
  }
  if (rec >= 0) {
    recovered.add(1);
    recoverySeconds.add(rec);
  } else {
    recovered.add(0);
  }
  logTable(`connection-storm (${profile}): windows of ${windowS} s; ` +
    (rec >= 0 ? `recovered ${rec} s after the trigger was removed` : `NOT recovered ${observeS} s after the trigger was removed: metastable`), rowsOut);
}

export function teardown() {
  database.cleanup();
  cleanupFaults();
}
