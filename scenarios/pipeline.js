/**
 * @drill     pipeline
 * @incident  none
 * @summary   the whole pipe: cache traffic through every proxy to memcached and the database, with a latency toxic on the memcached proxies mid-run
 * @expect    default=held
 * @param     duration  number  30    seconds of traffic
 * @param     rate      number  1000  fetches per second, split between the generators
 * @param     latency   number  50    ms of the latency toxic on the memcached proxies
 *
 * Not an incident: the smoke drill that proves firedrill works end to end.
 * Read-through traffic (get; on a miss SELECT by primary key, then set) goes
 * through the Toxiproxy proxy of every memcached server and of the database.
 * From 10 s to 20 s a 50 ms latency toxic sits on every memcached proxy; the
 * report shows fetch latency rise in that window and fall after it. The
 * steady state: the pipe serves what it is offered before, during and after
 * the toxic, which is felt (the median fetch takes the toxic's latency
 * more) and gone after it.
 *
 * With `--generators N` the traffic is split: one replay per generator at
 * rate / N (one VU each, by k6's execution segments); the toxic is still
 * added once, by generator 0.
 */
import cache from 'k6/x/cache';
import {
  at, cleanupFaults, drill, generators, memcachedProxies, param, precondition, seed, steady, toxicOff, toxicOn,
} from './lib/firedrill.js';

const duration = param('duration');
const rate = param('rate');
const latencyMs = param('latency');

export const options = {
  scenarios: {
    traffic: {
      executor: 'per-vu-iterations', vus: generators, iterations: 1, exec: 'traffic',
      maxDuration: `${duration + 30}s`,
    },
    latency_on: at(`${Math.round(duration / 3)}s`, 'latencyOn'),
    latency_off: at(`${Math.round((2 * duration) / 3)}s`, 'latencyOff'),
  },
  ext: drill({
    checks: [
      precondition('the pipe carried the offered load before the toxic', 'before', 'served_ratio >= 0.98'),
      precondition('fetches hit the cache', 'run', 'hit_ratio >= 0.5'),
      precondition('misses reached the database', 'run', 'db_queries > 0'),
      // The toxic is felt: every fetch waits for it at least once.
      steady('the latency toxic is felt', 'latency', `fetch_p50 >= 1 x before + ${0.8 * latencyMs}`),
      // ... but breaks nothing: a cold start on a busy machine may time
      // out a few of the first fetches, never more than 0.5%.
      steady('fetches are served during the toxic', 'latency', 'served_ratio >= 0.995'),
      steady('fetches are served after the toxic', 'after', 'served_ratio >= 0.995'),
      steady('latency is back after the toxic', 'after', `fetch_p50 <= 1 x before + ${0.2 * latencyMs}`),
    ],
  }),
};

export function setup() {
  cache.seed({ rows: 20000, seed });
  // Filled here, so traffic and the toxic's startTime begin together.
  cache.warm({ rows: 20000, seed, warm: 5000 });
}

export function traffic() {
  cache.replay({ rate: rate / generators, duration: `${duration}s`, rows: 20000, seed, warm: 0 });
}

const name = 'pipeline_latency';

export function latencyOn() {
  toxicOn(memcachedProxies(), { name, type: 'latency', attributes: { latency: latencyMs } });
}

export function latencyOff() {
  toxicOff(memcachedProxies(), name);
}

export function teardown() {
  cleanupFaults();
}
