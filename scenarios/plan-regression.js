/**
 * @drill     plan-regression
 * @incident  003_91731a899d8186bf.txt
 * @summary   a frequent indexed query loses its index and full-scans; its scans take the database and every other query slows
 * @expect    unprotected=broken protected=held
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
import { at, cleanupFaults, digest, param, profile, seed } from './lib/firedrill.js';

const duration = param('duration', 60); // seconds of traffic
const rate = param('rate', 400); // operations per second
const lookupFraction = param('lookup_fraction', 0.05); // share that are lookups by ref
const rows = param('rows', 200000); // the table a lost index makes them scan
const faultFrom = param('fault_from', 15); // s: the index is ignored from here
const faultTo = param('fault_to', 40); // s: and restored here
const limitMs = param('statement_limit', 50); // protected: max statement time
const switchAfter = param('switch_after', 20); // protected: lookup errors before the feature switch turns them off
const protectedRun = profile === 'protected';
const index = { table: 'cache_records', index: 'idx_ref' };

export const options = {
  setupTimeout: '180s',
  scenarios: {
    traffic: {
      executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'traffic',
      maxDuration: `${duration + 60}s`,
    },
    regression_on: at(`${faultFrom}s`, 'regressionOn'),
    regression_off: at(`${faultTo}s`, 'regressionOff'),
    // The caller's feature switch watches its own lookups' errors.
    feature_switch: Object.assign(at('1s', 'featureSwitch'), { maxDuration: `${duration + 30}s` }),
  },
  thresholds: {
    // The rest of the traffic holds: at most 5% of 100 ms intervals have a
    // p99 over 100 ms, for cache fetches (fills included) and for the
    // database queries behind them; and 0.5% of fetches fail at most.
    cache_fetch_ms: ['p(95)<100'],
    db_query_ms: ['p(95)<100'],
    'firedrill_errors{op:fetch}': [`count<${Math.ceil(rate * duration * 0.005)}`],
    // It got traffic, and lookups ran (they are the fault's target).
    cache_fetches: ['count>0'],
    db_lookups: ['count>0'],
  },
};

export function setup() {
  cache.seed({ rows, seed });
  if (protectedRun) {
    // Set before traffic starts: a global statement limit reaches only the
    // connections opened after it, and the replay opens its pools at start.
    database.setStatementLimit(limitMs);
    database.startQueryKiller({ thresholdMs: limitMs * 4, intervalMs: 100, detached: true, maxDurationMs: (duration + 30) * 1000 });
  }
}

export function traffic() {
  const s = cache.replay({
    rate, duration: `${duration}s`, rows, keys: rows, warm: 0, ttl: '600s', seed,
    lookupFraction, processes: 4, poolSize: 8, cacheTimeout: '1s', dbTimeout: '2s',
  });
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
// than switchAfter times it stops making them (a feature flag), and it
// turns them back on when the index is back. Unprotected it only watches.
export function featureSwitch() {
  let off = false;
  for (let t = 1; t < duration; t++) {
    const st = cache.status();
    if (!st.running) {
      sleep(1);
      continue;
    }
    const failed = (st.opErrors && st.opErrors.lookup) || 0;
    if (protectedRun && !off && failed > switchAfter) {
      cache.setMix({ lookupFraction: 0, name: 'feature switch: lookups off' });
      off = true;
    }
    if (off && t >= faultTo + 2) {
      cache.setMix({ lookupFraction, name: 'feature switch: lookups off' });
      off = false;
    }
    sleep(1);
  }
}

export function teardown() {
  database.cleanup();
  cleanupFaults();
}
