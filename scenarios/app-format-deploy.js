/**
 * @drill     app-format-deploy
 * @incident  000_e76083ecc6911798.txt
 * @summary   your service: a rolling deploy from base to head changes the cache format (base misses on head's entries: DB load rises), then the hot set expires at once
 * @expect    unprotected=broken protected=held
 * @app       base head
 * @nightly   deploy_from=22 deploy_over=25 expiry_at=51 expiry=8 duration=62
 * @param     duration         number  80             seconds of traffic
 * @param     rate             number  30             requests per second (open loop)
 * @param     deploy_from      number  30             seconds into traffic when the deploy starts (all requests go to base before)
 * @param     deploy_over      number  30             seconds the deploy is under way: head serves deploy_share of the requests, then all of them
 * @param     deploy_share     number  0.5            head's share of the requests while the deploy is under way (paused half way)
 * @param     invalidations    number  30             entries per second a write elsewhere invalidates (an id drawn like the requests', one of its parts): the steady refills the format change multiplies
 * @param     expiry_at        number  65             seconds into traffic when the hot set expires
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
 * format (Rails 7.0 style) and the base release the old one (6.1). As in
 * Rails, 7.0 reads 6.1 entries but 6.1 misses on 7.0 ones, so while both
 * serve, every entry head refills (after a write elsewhere invalidated it)
 * is a miss for base, which refills it again: the database's load rises by
 * about head's share of the refills for the whole mixed-version window. Then
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
const rollout = deploy({ from: param('deploy_from'), over: param('deploy_over'), hold: param('deploy_share') });
const invalidations = param('invalidations');

export const options = {
  setupTimeout: '120s',
  scenarios: Object.assign({
    traffic: arrivals('request', { rate, duration, slowestS: requestTimeout / 1000 }),
    writes: arrivals('invalidate', { rate: invalidations, duration, slowestS: 1 }),
    expiry: Object.assign(at(`${expiryAt}s`, 'expire'), { maxDuration: `${expiryS + 30}s` }),
  }, rollout.scenarios),
  // Phases: warmup, before (base alone, warm), deploy (both releases serve),
  // hot_set_expiry (from the expiry), after.
  // The first 10 s are a warm-up: the database's counters read across the
  // start of traffic still carry setup's fills, and an invalidated entry
  // of a rarely read id waits seconds for its refill, so the refill rate
  // takes that long to settle.
  ext: drill({
    warmup: 10,
    checks: [
      precondition('requests were served before the deploy', 'before', 'http_served_ratio >= 0.98'),
      // writes keep invalidating entries: about 30 of 450 gets a second miss
      precondition('the cache was warm before the deploy', 'before', 'server_mc_hit_ratio >= 0.85'),
      precondition('writes kept the database busy before the deploy', 'before', 'server_db_user_select_rate >= 10'),
      signature('database load rises while both releases serve', 'deploy', 'server_db_user_select_rate >= 1.2 x before',
        '000_e76083ecc6911798.txt:4'),
      signature('the hot set\'s expiry sends a query burst', 'hot_set_expiry', 'server_db_user_select_rate_peak >= 4 x server_db_user_select_rate@before',
        '000_e76083ecc6911798.txt:5'),
      steady('the deploy costs the database little', 'deploy', 'server_db_user_select_rate <= 1.2 x before + 5'),
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

// A write elsewhere in the fleet (IdentityCache expires on commit): one
// entry of an id deleted; the next request's release refills it in its
// format.
export function invalidate() {
  cache.expireKeys({ keys: [entryKey(shape.id(), Math.floor(shape.random() * calls))] });
}

// The service's cache key of entry part of id.
function entryKey(id, part) {
  return cacheKey.replaceAll('{id}', String(id)).replaceAll('{part}', String(part));
}

// The hot set's entries deleted on every memcached server at once.
export function expire() {
  const keys = [];
  for (let id = 1; id <= hotSet; id++) {
    for (let part = 0; part < calls; part++) {
      keys.push(entryKey(id, part));
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
