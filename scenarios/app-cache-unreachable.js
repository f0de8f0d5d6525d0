/**
 * @drill     app-cache-unreachable
 * @incident  004_c305d8cfd50f32dd.txt
 * @summary   your service: its new cache tier is unreachable (SYNs dropped); each of a request's calls to it waits the connect timeout, requests take calls x timeout and serving capacity runs out
 * @expect    unprotected=broken protected=held
 * @app       service
 * @tier      1
 * @nightly   before=15 fault=40 after=20
 * @param     before           number  15             seconds of traffic before the tier is cut off
 * @param     fault            number  60             seconds the tier is unreachable (longer than one unprotected request: calls x timeout)
 * @param     after            number  30             seconds after the "redeploy" (the tier reachable again)
 * @param     rate             number  10             requests per second (open loop)
 * @param     method           string  GET            the request's method
 * @param     path             string  /items/{id}    the request's path; {id} is drawn from a Zipf distribution over 1..ids
 * @param     headers          string  Accept:application/json  the request's headers, Name:value,Name:value
 * @param     ids              number  2000           ids the requests draw from
 * @param     zipf             number  1.1            Zipf exponent of the ids (id 1 the most popular)
 * @param     calls            number  15             calls to the tier a request makes (the service's TIER_CALLS): the signature's unit
 * @param     request_timeout  number  40000          ms before k6 gives up on a request (VUs are preallocated for it): above calls x 2 s
 *
 * Incident 004: a new shared cache was added to the web fleets' requests,
 * but the fleets' security groups did not admit them: every call waited
 * its 2 s connect timeout, a request made many calls, so requests went
 * from ~60 ms to over 30 s and used up every serving slot until the
 * change was redeployed away. Here the service under test calls a cache
 * tier of its own (@tier: the example service's TIER, {{tier.servers}})
 * `calls` times per request, and the fault drops every packet to the
 * tier's proxy inside Toxiproxy's network namespace, as a security group
 * does: a connect is neither accepted nor refused, so the client's own
 * connect timeout fires, and an open connection goes silent until its
 * call timeout. Without protection a request takes calls x 2 s, the
 * worker pool fills and requests are shed; when the tier is back ("the
 * redeploy") it recovers. With a short connect and call timeout, a
 * breaker per tier server and a feature flag that stops the calls until a
 * probe reaches the tier again, requests keep their speed. Against a
 * service with one configuration the steady states decide and the
 * signatures are shown for information.
 */
import {
  appURL, arrivals, at, cleanupFaults, drill, param, precondition, requestShape, send, signature, steady, tierProxies,
  unreachableOff, unreachableOn, window,
} from './lib/firedrill.js';

const beforeS = param('before');
const faultS = param('fault');
const afterS = param('after');
const rate = param('rate');
const calls = param('calls');
const requestTimeout = param('request_timeout');
const duration = beforeS + faultS + afterS;

// The incident's timeout: the signature's unit.
const incidentTimeoutMs = 2000;
// The requests sent from 1 s after the cut (the tier's server is read once
// a second) until calls x the incident's timeout (and 2 s) before its end:
// those that met the unreachable tier with all their calls.
const fullyCut = Math.max(2, faultS - (calls * incidentTimeoutMs) / 1000 - 2);

const shape = requestShape({
  method: param('method'), path: param('path'), headers: param('headers'), ids: param('ids'), zipf: param('zipf'),
  timeout: requestTimeout,
});

export const options = {
  scenarios: {
    traffic: arrivals('request', { rate, duration, slowestS: requestTimeout / 1000 }),
    cut_off: at(`${beforeS}s`, 'cutOff'),
    redeploy: at(`${beforeS + faultS}s`, 'redeploy'),
  },
  // The phase "unreachable" is the fault's window.
  ext: drill({
    windows: [
      window('cut_off', { of: 'unreachable', from: 1, to: fullyCut }),
      window('redeployed', { after: 'unreachable', from: 10, to: afterS }),
    ],
    checks: [
      precondition('requests were served before the tier was cut off', 'before', 'http_served_ratio >= 0.98'),
      // the tier's own count: no call reached it while it was cut off
      precondition('the tier was unreachable', 'cut_off', 'server_tier_cmd_get_rate <= 0.01 x before'),
      signature('requests take calls x timeout', 'cut_off', `http_p50{class=served} >= ${calls * incidentTimeoutMs}`,
        '004_c305d8cfd50f32dd.txt:5', { figure: 'about 60 ms to over 30 s a request: 2 s timeouts, many calls each' }),
      signature('serving capacity runs out', 'unreachable', 'http_served_ratio <= 0.9', '004_c305d8cfd50f32dd.txt:3',
        { figure: '"quickly took up all serving capacity"' }),
      signature('it recovers when the change is redeployed', 'redeployed', 'http_served_ratio >= 0.99',
        '004_c305d8cfd50f32dd.txt:4', { figure: 'the deployment was rolled back and the endpoints were back' }),
      steady('requests stay fast', 'unreachable', 'http_p99 <= 2 x before',
        { figure: 'a feature flag to opt in to the new functionality would have reduced it' }),
      steady('requests are served', 'unreachable', 'http_served_ratio >= 0.99'),
      steady('requests are served after the redeploy', 'redeployed', 'http_served_ratio >= 0.99'),
    ],
  }),
};

export function request() {
  send(shape, appURL);
}

export function cutOff() {
  unreachableOn(tierProxies());
}

export function redeploy() {
  unreachableOff(tierProxies());
}

export function teardown() {
  cleanupFaults();
}
