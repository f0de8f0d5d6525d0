/**
 * @drill     plan-regression
 * @incident  003_91731a899d8186bf.txt
 * @summary   a frequent indexed query loses its index and full-scans; its scans take the database and every other query slows
 * @expect    unprotected=broken protected=held
 * @nightly   warmup=8 duration=40 fault_from=8 fault_to=28
 * @param     warmup           number  10       seconds of traffic that fill the cache first, not judged
 * @param     duration         number  50       seconds of judged traffic after the warm-up
 * @param     rate             number  400      operations per second
 * @param     lookup_fraction  number  0.1      share of operations that are lookups by ref
 * @param     rows             number  1000000  rows of the table a lost index makes them scan: large enough that a scan outlasts the fills on a quiet machine
 * @param     fault_from       number  10       seconds into the judged traffic when the index is ignored
 * @param     fault_to         number  35       seconds into the judged traffic when it is restored
 * @param     statement_limit  number  50       ms: the protected profile's statement time limit
 * @param     switch_after     number  20       lookup errors before the protected caller's feature switch turns lookups off
 *
 * Incident 003: a frequent query lost its index and turned into a full
 * table scan; the scans piled up on the server and the latency of every
 * query there climbed, not only that one's. Here a share of the traffic
 * looks records up by an indexed column (idx_ref) while the rest reads
 * through the cache; for a window the index is ignored (ALTER INDEX ..
 * IGNORED / INVISIBLE) and then restored. Unprotected, the scans hold the
 * pools' connections and the server's CPU, so cache fills slow and fail.
 * Protected, a statement time limit cuts each scan short, a query killer
 * backs it up, and the caller's feature switch turns the lookups off once
 * they fail, so the rest of the traffic stays within the hypothesis.
 */
import cache from 'k6/x/cache';
import database from 'k6/x/database';
import { sleep } from 'k6';
import {
  at, cleanupFaults, digest, drill, param, perGenerator, precondition, profile, seed, share, shareCount, signature, steady,
} from './lib/firedrill.js';

const warmupS = param('warmup');
const duration = param('duration');
const rate = param('rate');
const lookupFraction = param('lookup_fraction');
const rows = param('rows');
const faultFrom = param('fault_from');
const faultTo = param('fault_to');
const limitMs = param('statement_limit');
const switchAfter = param('switch_after');
const protectedRun = profile === 'protected';
const dbQuota = Number(__ENV.FIREDRILL_DB_CPUS) || 1;
const index = { table: 'cache_records', index: 'idx_ref' };

export const options = {
  setupTimeout: '180s',
  scenarios: {
    traffic: perGenerator('0s', 'traffic', `${warmupS + duration + 60}s`),
    // startTime counts from the end of setup, when the warm-up replay starts.
    regression_on: at(`${warmupS + faultFrom}s`, 'regressionOn'),
    regression_off: at(`${warmupS + faultTo}s`, 'regressionOff'),
    // The caller's feature switch watches its own lookups' errors, in
    // every generator (each steers its own engine).
    feature_switch: perGenerator(`${warmupS}s`, 'featureSwitch', `${duration + 30}s`),
  },
  // The warm-up replay fills the cache's tail; the run is judged after it.
  // "db" latency is every database query but the lookups themselves: the
  // queries the regression did not touch.
  ext: drill({
    warmup: warmupS,
    checks: [
      precondition('fetches were served before the regression', 'before', 'served_ratio{op=fetch} >= 0.98'),
      // The 20,000 most popular records, cached in setup, are 73% of
      // Zipf(0.99) traffic over 1,000,000 keys; a cold cache is near 0.
      precondition('the cache was warm before the regression', 'before', 'hit_ratio >= 0.6'),
      precondition('lookups ran before the regression', 'before', 'offered{op=lookup} >= 10'),
      // The incident's own observable is the servers' CPU: judged on the
      // database container's CPU seconds (the Docker API), as a share of
      // its quota (FIREDRILL_DB_CPUS, one core by default; without a quota,
      // of one core). Measured 0.07 core before, 0.98 in the regression.
      signature('the database runs at its CPU quota', 'plan_regression', `server_cpu_rate{container=mysql} >= ${0.9 * dbQuota}`,
        '003_91731a899d8186bf.txt:9', { figure: 'replicas near 100% CPU: down for about 2 h' }),
      signature('the other queries on the server slow down', 'plan_regression', 'db_p99 >= 10 x before',
        '003_91731a899d8186bf.txt:9', { figure: 'latencies up for almost all services' }),
      signature('fetches slow down with them', 'plan_regression', 'fetch_p99 >= 10 x before',
        '003_91731a899d8186bf.txt:9'),
      steady('the other queries stay fast', 'plan_regression', 'db_p99 <= 2 x before + 10',
        { figure: 'killing the queries automatically got control back' }),
      steady('fetches stay fast', 'plan_regression', 'fetch_p99 <= 2 x before + 10'),
      steady('fetches are served', 'plan_regression', 'served_ratio{op=fetch} >= 0.995'),
    ],
  }),
};

export function setup() {
  cache.seed({ rows, seed });
  // The most popular records are cached here, the tail by the warm-up
  // replay, so the judged part starts at a steady hit ratio and every
  // startTime counts from the start of traffic.
  cache.warm(Object.assign({}, replayOpts, { warm: Math.min(rows, 20000) }));
  if (protectedRun) {
    // Set before traffic starts: a global statement limit reaches only the
    // connections opened after it, and the replay opens its pools at start.
    database.setStatementLimit(limitMs);
    database.startQueryKiller({ thresholdMs: limitMs * 4, intervalMs: 100, detached: true, maxDurationMs: (warmupS + duration + 30) * 1000 });
  }
}

const replayOpts = {
  rate: share(rate), rows, keys: rows, ttl: '600s', seed, processes: shareCount(4), poolSize: 8, cacheTimeout: '1s', dbTimeout: '2s',
};

// One replay: its first warmup seconds fill the cache's tail (phase
// warmup, not judged), the rest is judged.
export function traffic() {
  const s = cache.replay(Object.assign({}, replayOpts, { duration: `${warmupS + duration}s`, warm: 0, lookupFraction }));
  console.log(digest(`plan-regression (${profile})`, s));
  console.log(`lookups: ${s.lookups}, p50 ${s.lookupP50Ms.toFixed(1)} ms, p99 ${s.lookupP99Ms.toFixed(1)} ms; errors by op ${JSON.stringify(s.opErrors)}`);
}

export function regressionOn() {
  database.planRegression(index);
}

export function regressionOff() {
  database.revertPlanRegression(index);
}

// featureSwitch is the caller's protection: once its lookups fail more
// than switchAfter times (its generator's share) it stops making them (a
// feature flag), and it turns them back on when the index is back. It
// looks every 200 ms, as an error-rate alarm on a feature flag would.
// Unprotected it only watches.
export function featureSwitch() {
  let off = false;
  let seen = 0; // lookup errors already acted on
  const start = Date.now();
  const limit = shareCount(switchAfter);
  for (let t = 0; t < duration; t = (Date.now() - start) / 1000) {
    const st = cache.status();
    const failed = (st.running && st.opErrors && st.opErrors.lookup) || 0;
    if (protectedRun && !off && failed - seen > limit) {
      cache.setMix({ lookupFraction: 0, name: 'feature switch: lookups off' });
      off = true;
    }
    if (off && t >= faultTo + 2) {
      cache.setMix({ lookupFraction, name: 'feature switch: lookups off' });
      off = false;
      seen = failed;
    }
    sleep(0.2);
  }
}

export function teardown() {
  database.cleanup();
  cleanupFaults();
}
