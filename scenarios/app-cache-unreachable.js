/**
 * @drill     app-cache-unreachable
 * @incident  004_c305d8cfd50f32dd.txt
 * @summary   your service: a cache server becomes unreachable; each call waits the client timeout, requests take calls x timeout and serving capacity runs out
 * @expect    unprotected=broken protected=held
 * @app       service
 * @nightly   duration=36 fault_from=10 fault_to=28
 * @param     duration         number  60             seconds of traffic
 * @param     rate             number  20             requests per second (open loop)
 * @param     fault_from       number  15             seconds into traffic when the cache server is blackholed
 * @param     fault_to         number  40             seconds into traffic when it is back
 * @param     method           string  GET            the request's method
 * @param     path             string  /items/{id}    the request's path; {id} is drawn from a Zipf distribution over 1..ids
 * @param     headers          string  Accept:application/json  the request's headers, Name:value,Name:value
 * @param     ids              number  2000           ids the requests draw from
 * @param     zipf             number  1.1            Zipf exponent of the ids (id 1 the most popular)
 * @param     request_timeout  number  12000          ms before k6 gives up on a request (VUs are preallocated for it)
 * @param     cache_timeout    number  2000           ms: the service's cache call timeout without protection (the signature's unit)
 * @param     budget           number  250            ms the protected service's p99 may grow by during the fault
 *
 * Incident 004: a new cache was unreachable from the web fleets; every
 * call waited its 2 s timeout, a request made many calls, requests went
 * from ~60 ms to over 30 s and used up every serving slot. Here the last
 * memcached server's proxy holds every byte (a Toxiproxy timeout toxic)
 * for a window while the service under test takes an open-loop stream of
 * requests. Without protection each call to that server waits the cache
 * timeout, so a request takes calls-to-it x timeout and the worker pool
 * fills: requests queue and are shed. With a short connect and call
 * timeout and a breaker per server, the first calls fail fast, the breaker
 * opens, and the service reads the database instead at its usual speed.
 * Against a service with one configuration the steady states decide and
 * the signatures are shown for information.
 */
import {
  appURL, arrivals, at, cleanupFaults, drill, memcachedProxies, param, precondition, requestShape, send, signature, steady,
  toxicOff, toxicOn,
} from './lib/firedrill.js';

const duration = param('duration');
const rate = param('rate');
const faultFrom = param('fault_from');
const faultTo = param('fault_to');
const requestTimeout = param('request_timeout');
const cacheTimeout = param('cache_timeout');
const budget = param('budget');

const shape = requestShape({
  method: param('method'), path: param('path'), headers: param('headers'), ids: param('ids'), zipf: param('zipf'),
  timeout: requestTimeout,
});

export const options = {
  scenarios: {
    traffic: arrivals('request', { rate, duration, slowestS: requestTimeout / 1000 }),
    blackhole_on: at(`${faultFrom}s`, 'blackholeOn'),
    blackhole_off: at(`${faultTo}s`, 'blackholeOff'),
  },
  // The phase "timeout" is the blackhole's window (a Toxiproxy timeout toxic).
  ext: drill({
    checks: [
      precondition('requests were served before the blackhole', 'before', 'http_served_ratio >= 0.98'),
      signature('requests take calls x timeout', 'timeout', `http_p99 >= 10 x before + ${2 * cacheTimeout}`,
        '004_c305d8cfd50f32dd.txt:3'),
      signature('serving capacity runs out', 'timeout', 'http_served_ratio <= 0.9', '004_c305d8cfd50f32dd.txt:3'),
      steady('requests stay fast', 'timeout', `http_p99 <= 2 x before + ${budget}`),
      steady('requests are served', 'timeout', 'http_served_ratio >= 0.99'),
      steady('requests are served after the blackhole', 'after', 'http_served_ratio >= 0.99'),
    ],
  }),
};

// The blackholed server: the last one, as a new cache added to the ring.
function target() {
  const ps = memcachedProxies();
  return [ps[ps.length - 1]];
}

const toxic = 'blackhole';

export function request() {
  send(shape, appURL);
}

export function blackholeOn() {
  toxicOn(target(), { name: toxic, type: 'timeout', attributes: { timeout: 0 } });
}

export function blackholeOff() {
  toxicOff(target(), toxic);
}

export function teardown() {
  cleanupFaults();
}
