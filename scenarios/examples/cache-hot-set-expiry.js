// Example: the first incident's shape with k6/x/cache. Steady read-through
// traffic; at 20 s half the fleet flips cache format (a rolling deploy); at
// 40 s the hot set expires at one instant. Set PROTECT=1 to turn on leases,
// coalescing and TTL jitter and watch db_queries stay flat.
import cache from 'k6/x/cache';

const protect = __ENV.PROTECT === '1';

export const options = {
  scenarios: {
    traffic: { executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'traffic', maxDuration: '2m' },
    deploy: { executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'flip', startTime: '20s' },
    expiry: { executor: 'shared-iterations', vus: 1, iterations: 1, exec: 'expire', startTime: '40s' },
  },
  thresholds: {
    // one sample per 100 ms interval = that interval's p99 (see index.d.ts)
    cache_fetch_ms: ['p(99)<250'],
    'firedrill_errors{class:too_many_connections}': ['count<1'],
  },
};

export function setup() {
  return cache.seed({ rows: 200000 });
}

export function traffic() {
  const summary = cache.replay({
    rate: 3000, duration: '60s', rows: 200000, hotSet: 500, warm: 50000, ttl: '10m',
    processes: 8, poolSize: 10, queryDelay: '5ms',
    protections: protect ? { leases: true, coalesce: true, ttlJitter: 0.2, compatRead: true } : {},
  });
  console.log(JSON.stringify(summary));
}

export function flip() {
  cache.flipFormat({ fraction: 0.5, name: 'rails-7.0-cache-format' });
}

export function expire() {
  cache.expireHotSet({ keys: 500, name: 'hot-key-expiry' });
}
