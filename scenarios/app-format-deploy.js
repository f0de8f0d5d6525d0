/**
 * @drill     app-format-deploy
 * @incident  000_e76083ecc6911798.txt
 * @summary   your service: a rolling deploy from base to head changes the cache format (each release misses on the other's entries: DB load rises), then the hot set expires at once
 * @expect    unprotected=broken protected=held
 * @app       base head
 * @nightly   deploy_from=8 deploy_over=12 expiry_at=26 expiry=8 duration=38
 * @param     duration         number  60             seconds of traffic
 * @param     rate             number  30             requests per second (open loop)
 * @param     deploy_from      number  10             seconds into traffic when the deploy starts (all requests go to base before)
 * @param     deploy_over      number  20             seconds the deploy takes: the share of requests to head grows from 0 to 1
 * @param     expiry_at        number  40             seconds into traffic when the hot set expires
 * @param     expiry           number  10             seconds of the expiry phase
 * @param     hot_set          number  100            the most popular ids whose entries expire together
 * @param     calls            number  15             cache entries per id: the service's calls per request (the example's CACHE_CALLS)
 * @param     cache_key        string  item:{id}:{part}  the service's cache key of entry part of id
 * @param     method           string  GET            the request's method
 * @param     path             string  /items/{id}    the request's path; {id} is drawn from a Zipf distribution over 1..ids
 * @param     headers          string  Accept:application/json  the request's headers, Name:value,Name:value
 * @param     ids              number  200            ids the requests draw from, every one cached in setup
 * @param     zipf             number  1.1            Zipf exponent of the ids (id 1 the most popular)
 * @param     request_timeout  number  10000          ms before k6 gives up on a request (VUs are preallocated for it)
 *
 * Incident 000 as a rolling deploy: the head release writes the new cache
 * format (Rails 7.0 style) and the base release the old one (6.1); while
 * both serve, each reads the other's entries as misses and refills them,
 * so the database's load rises for the whole mixed-version window. Then
 * the hot set expires at one instant (its entries deleted on every
 * memcached server at once), and the refills arrive as a burst. Setup
 * caches every id through base first, so "before" is a warm cache.
 * Protected, both releases read both formats (the dual read that lets a
 * format change roll out), so the deploy costs the database nothing, and
 * requests are served through the expiry; the burst itself is shown for
 * information. The database's load is its own count of the service's
 * SELECTs (server_db_user_select), read once a second.
 */
import cache from 'k6/x/cache';
import http from 'k6/http';
import { sleep } from 'k6';
import {
  appBaseURL, arrivals, at, cleanupFaults, deploy, drill, markFault, param, precondition, requestShape, signature, steady,
} from './lib/firedrill.js';

export { deployEnd, deployStart } from './lib/firedrill.js';

const duration = param('duration');
const rate = param('rate');
const expiryAt = param('expiry_at');
const expiryS = param('expiry');
const hotSet = param('hot_set');
const calls = param('calls');
const cacheKey = param('cache_key');
const ids = param('ids');
const requestTimeout = param('request_timeout');

const shape = requestShape({
  method: param('method'), path: param('path'), headers: param('headers'), ids, zipf: param('zipf'), timeout: requestTimeout,
});
const rollout = deploy({ from: param('deploy_from'), over: param('deploy_over') });

export const options = {
  setupTimeout: '120s',
  scenarios: Object.assign({
    traffic: arrivals('request', { rate, duration, slowestS: requestTimeout / 1000 }),
    expiry: Object.assign(at(`${expiryAt}s`, 'expire'), { maxDuration: `${expiryS + 30}s` }),
  }, rollout.scenarios),
  // Phases: warmup, before (base alone, warm), deploy (both releases serve),
  // hot_set_expiry (from the expiry), after.
  // The first seconds are a warm-up: the database's counters read across
  // the start of traffic still carry setup's fills.
  ext: drill({
    warmup: 3,
    checks: [
      precondition('requests were served before the deploy', 'before', 'http_served_ratio >= 0.98'),
      precondition('the cache was warm before the deploy', 'before', 'server_mc_hit_ratio >= 0.9'),
      signature('database load rises while both releases serve', 'deploy', 'server_db_user_select_rate >= 1.2 x before + 10',
        '000_e76083ecc6911798.txt:4'),
      signature('the hot set\'s expiry sends a query burst', 'hot_set_expiry', 'server_db_user_select_rate_peak >= 5 x before + 50',
        '000_e76083ecc6911798.txt:5'),
      steady('the deploy costs the database little', 'deploy', 'server_db_user_select_rate <= 1.2 x before + 10'),
      steady('requests are served through the deploy', 'deploy', 'http_served_ratio >= 0.99'),
      steady('requests are served through the expiry', 'hot_set_expiry', 'http_served_ratio >= 0.99'),
    ],
  }),
};

// Every id once through base, one after the other: every entry cached in
// the old format before traffic starts.
export function setup() {
  for (let id = 1; id <= ids; id++) {
    const res = http.get(`${appBaseURL}${shape.path.replaceAll('{id}', String(id))}`, { headers: shape.headers, timeout: `${requestTimeout}ms` });
    if (res.status !== 200) throw new Error(`warming ${shape.path} id ${id} through base: status ${res.status} ${res.error || ''}`);
  }
}

export function request() {
  rollout.send(shape);
}

// The hot set's entries deleted on every memcached server at once.
export function expire() {
  const keys = [];
  for (let id = 1; id <= hotSet; id++) {
    for (let part = 0; part < calls; part++) {
      keys.push(cacheKey.replaceAll('{id}', String(id)).replaceAll('{part}', String(part)));
    }
  }
  markFault('hot_set_expiry', 'inject', `top-${hotSet}`);
  const r = cache.expireKeys({ keys });
  console.log(`hot set expired: ${r.present} of ${r.keys} entries present on ${r.servers} servers, in ${r.elapsedMs.toFixed(1)} ms`);
  sleep(expiryS);
  markFault('hot_set_expiry', 'remove', `top-${hotSet}`);
}

export function teardown() {
  cleanupFaults();
}
