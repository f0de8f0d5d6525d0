/**
 * @drill     verdict-invalid
 * @incident  none
 * @summary   test drill: every memcached proxy is disabled before traffic, so the cache is never warm and the run must be invalid
 * @expect    unprotected=broken
 *
 * Not a drill to run: the harness's tests use it to prove that a failed
 * precondition makes a run invalid rather than "incident reproduced".
 * Fetches fall back to the database (and are served), but nothing is ever
 * a hit, so "the cache was warm before the fault" fails.
 */
import cache from 'k6/x/cache';
import toxiproxy from 'k6/x/toxiproxy';
import { at, cleanupFaults, drill, memcachedProxies, precondition, seed, signature, toxicOff, toxicOn } from '../lib/firedrill.js';

export const options = {
  setupTimeout: '60s',
  scenarios: {
    traffic: { executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'traffic', maxDuration: '60s' },
    latency_on: at('4s', 'latencyOn'),
    latency_off: at('8s', 'latencyOff'),
  },
  ext: drill({
    checks: [
      precondition('the cache was warm before the fault', 'before', 'hit_ratio >= 0.8'),
      signature('fetches slow down', 'latency', 'fetch_p50 >= 1 x before + 20', 'none.txt:1'),
    ],
  }),
};

export function setup() {
  cache.seed({ rows: 2000, seed });
  for (const p of memcachedProxies()) toxiproxy.disable(p);
}

export function traffic() {
  cache.replay({ rate: 200, duration: '12s', rows: 2000, seed, warm: 0, cacheTimeout: '200ms', cacheConnectTimeout: '200ms' });
}

export function latencyOn() {
  toxicOn([__ENV.FIREDRILL_MYSQL_PROXY || 'mysql'], { name: 'slow', type: 'latency', attributes: { latency: 50 } });
}

export function latencyOff() {
  toxicOff([__ENV.FIREDRILL_MYSQL_PROXY || 'mysql'], 'slow');
}

export function teardown() {
  for (const p of memcachedProxies()) toxiproxy.enable(p);
  cleanupFaults();
}
