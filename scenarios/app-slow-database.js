/**
 * @drill     app-slow-database
 * @incident  003_91731a899d8186bf.txt
 * @summary   your service: its database turns slow (latency on every query); the service must keep serving within its budget instead of queueing
 * @expect    unprotected=broken protected=held
 * @app       service
 * @nightly   duration=36 fault_from=10 fault_to=28
 * @param     duration         number  60             seconds of traffic
 * @param     rate             number  20             requests per second (open loop)
 * @param     fault_from       number  15             seconds into traffic when the database turns slow
 * @param     fault_to         number  40             seconds into traffic when it is fast again
 * @param     latency          number  300            ms added to every database round trip (a Toxiproxy latency toxic on its proxy)
 * @param     method           string  GET            the request's method
 * @param     path             string  /items/{id}    the request's path; {id} is drawn from a Zipf distribution over 1..ids
 * @param     headers          string  Accept:application/json  the request's headers, Name:value,Name:value
 * @param     ids              number  20000          ids the requests draw from (a long tail keeps missing the cache)
 * @param     zipf             number  0.8            Zipf exponent of the ids
 * @param     request_timeout  number  12000          ms before k6 gives up on a request (VUs are preallocated for it)
 * @param     budget           number  1000           ms: the service's request budget; a protected answer, served or shed, comes within it
 *
 * A database that turns slow, as the replicas did when a query plan
 * regressed (incident 003): every query of the service under test gets
 * `latency` ms more (a Toxiproxy latency toxic on the database's proxy).
 * A request whose cache entries miss waits that once per miss, one after
 * the other. Without a query timeout or a request budget, requests take
 * seconds, the worker pool fills and requests queue and time out. With
 * them, the service answers within its budget, and it must answer with
 * the item, not a fast 503: shedding is no hold. The example service
 * holds by reading a request's missed parts once, in one round trip,
 * from a pool opened before it took traffic (DB_ONE_READ, DB_WARM_POOL):
 * before those, with a query per part and a pool that had to grow while
 * the database was slow, its 500 ms query timeout cut every new
 * connection's handshake short and it shed 70-85% of the requests within
 * budget (2026-12-03), which this drill then called held.
 */
import {
  appURL, arrivals, at, cleanupFaults, drill, param, precondition, requestShape, send, signature, steady, toxicOff, toxicOn,
} from './lib/firedrill.js';

const duration = param('duration');
const rate = param('rate');
const faultFrom = param('fault_from');
const faultTo = param('fault_to');
const latency = param('latency');
const requestTimeout = param('request_timeout');
const budget = param('budget');

const shape = requestShape({
  method: param('method'), path: param('path'), headers: param('headers'), ids: param('ids'), zipf: param('zipf'),
  timeout: requestTimeout,
});

export const options = {
  scenarios: {
    traffic: arrivals('request', { rate, duration, slowestS: requestTimeout / 1000 }),
    slow_on: at(`${faultFrom}s`, 'slowOn'),
    slow_off: at(`${faultTo}s`, 'slowOff'),
  },
  // The phase "latency" is the toxic's window.
  ext: drill({
    checks: [
      precondition('requests were served before the database slowed', 'before', 'http_served_ratio >= 0.98'),
      precondition('the service read its database before the fault', 'before', 'server_db_user_select_rate >= 5'),
      signature('requests queue behind the slow database', 'latency', `http_p99 >= 3 x before + ${2 * budget}`,
        '003_91731a899d8186bf.txt:7'),
      steady('every answer comes within the budget', 'latency', `http_p99 <= ${budget + 250}`),
      steady('no request is left waiting', 'latency', 'http_timeout_ratio == 0'),
      steady('requests are served while the database is slow', 'latency', 'http_served_ratio >= 0.98'),
      steady('requests are served after the database recovers', 'after', 'http_served_ratio >= 0.98'),
    ],
  }),
};

const toxic = 'slow_database';

export function request() {
  send(shape, appURL);
}

export function slowOn() {
  toxicOn([__ENV.FIREDRILL_MYSQL_PROXY], { name: toxic, type: 'latency', attributes: { latency } });
}

export function slowOff() {
  toxicOff([__ENV.FIREDRILL_MYSQL_PROXY], toxic);
}

export function teardown() {
  cleanupFaults();
}
