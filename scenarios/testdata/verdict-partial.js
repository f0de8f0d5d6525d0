/**
 * @drill     verdict-partial
 * @incident  none
 * @summary   test drill: two signatures, one that a latency toxic shows and one no run can show, so the verdict must be partial
 * @expect    unprotected=broken
 *
 * Not a drill to run: the harness's tests use it to prove that a profile
 * declared broken which shows only some of its signatures ends partial.
 */
import cache from 'k6/x/cache';
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
      precondition('fetches were served before the fault', 'before', 'served_ratio >= 0.98'),
      signature('fetches slow down', 'latency', 'fetch_p50 >= 1 x before + 20', 'none.txt:1'),
      signature('a million fetches fail', 'latency', 'failed >= 1000000', 'none.txt:2'),
    ],
  }),
};

export function setup() {
  cache.seed({ rows: 2000, seed });
  cache.warm({ rows: 2000, seed, warm: 2000 });
}

export function traffic() {
  cache.replay({ rate: 200, duration: '12s', rows: 2000, seed, warm: 0 });
}

export function latencyOn() {
  toxicOn(memcachedProxies(), { name: 'slow', type: 'latency', attributes: { latency: 50 } });
}

export function latencyOff() {
  toxicOff(memcachedProxies(), 'slow');
}

export function teardown() {
  cleanupFaults();
}
