/**
 * @drill     pipeline
 * @incident  none
 * @summary   the whole pipe: cache traffic through every proxy to memcached and the database, with a latency toxic on the memcached proxies mid-run
 * @expect    default=held
 *
 * Not an incident: the smoke drill that proves firedrill works end to end.
 * Read-through traffic (get; on a miss SELECT by primary key, then set) goes
 * through the Toxiproxy proxy of every memcached server and of the database.
 * From 10 s to 20 s a 50 ms latency toxic sits on every memcached proxy; the
 * report shows fetch latency rise in that window and fall after it. The
 * hypothesis is that the pipe carries traffic and the toxic is felt but
 * causes no errors.
 *
 * With `--generators N` the traffic is split: one replay per generator at
 * rate / N (one VU each, by k6's execution segments); the toxic is still
 * added once, by generator 0.
 */
import cache from 'k6/x/cache';
import { at, cleanupFaults, generators, memcachedProxies, param, seed, toxicOff, toxicOn } from './lib/firedrill.js';

const duration = param('duration', 30); // seconds of traffic
const rate = param('rate', 1000); // fetches per second
const latencyMs = param('latency', 50);

export const options = {
  scenarios: {
    traffic: {
      executor: 'per-vu-iterations', vus: generators, iterations: 1, exec: 'traffic',
      maxDuration: `${duration + 30}s`,
    },
    latency_on: at(`${Math.round(duration / 3)}s`, 'latencyOn'),
    latency_off: at(`${Math.round((2 * duration) / 3)}s`, 'latencyOff'),
  },
  thresholds: {
    // The pipe carries traffic, hits the cache and reaches the database.
    cache_fetches: [`count>${Math.floor(rate * duration * 0.8)}`],
    cache_hits: ['count>0'],
    db_queries: ['count>0'],
    // The toxic slows fetches but breaks nothing: fewer than 0.5% of
    // fetches fail (a cold start on a busy machine times out a few).
    firedrill_errors: [`count<${Math.ceil(rate * duration * 0.005)}`],
  },
};

export function setup() {
  cache.seed({ rows: 20000, seed });
}

export function traffic() {
  cache.replay({ rate: rate / generators, duration: `${duration}s`, rows: 20000, seed, warm: 5000 });
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
