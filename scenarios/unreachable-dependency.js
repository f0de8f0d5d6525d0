/**
 * @drill     unreachable-dependency
 * @incident  004_c305d8cfd50f32dd.txt
 * @summary   a new cache tier is unreachable from the fleet (SYNs dropped): each of a request's 15 calls waits the 2 s connect timeout, requests take 30 s and serving slots run out
 * @expect    unprotected=broken protected=held
 * @tier      1
 * @nightly   before=15 fault=40 after=20
 * @param     before          number  20                    seconds of traffic before the tier is cut off
 * @param     fault           number  60                    seconds the tier is unreachable (longer than one unprotected request: calls x timeout)
 * @param     after           number  40                    seconds after the "redeploy" (the tier reachable again)
 * @param     rate            number  40                    requests per second (open loop)
 * @param     calls           number  15                    calls to the tier a request makes, one after another
 * @param     rows            number  20000                 records (the tier's keys)
 * @param     slots           number  200                   serving capacity: requests in flight at most
 * @param     timeout         number  2000   protected=100  ms: the tier client's connect and call timeout
 * @param     breaker         number  0      protected=3    consecutive failures that open a tier server's circuit breaker (0: none)
 * @param     flag            bool    false  protected=true a feature flag that turns the tier's calls off when they fail, and on again when a background probe reaches it
 *
 * Incident 004: a new shared cache was added to the web fleets' requests,
 * but the fleets' security groups did not admit them: every call waited
 * its 2 s connect timeout, a request made many calls one after another, so
 * requests went from ~60 ms to over 30 s and took up every serving slot,
 * until the change was redeployed away. Here the fleet's requests call a
 * cache tier of their own (@tier: its own memcached behind its own
 * Toxiproxy proxy) `calls` times each. The fault drops every packet to
 * that proxy's port inside Toxiproxy's network namespace (an iptables
 * DROP, as a security group does), so a connect is neither accepted nor
 * refused: the client's connect timeout is what fires, and an open
 * connection goes silent until its call timeout. Unprotected (2 s, no
 * breaker, no flag) a request takes calls x 2 s and the slots run out;
 * when the tier is reachable again ("the redeploy") it recovers.
 * Protected, a short timeout bounds the first failures, the breaker fails
 * the next ones fast, and the feature flag stops the calls altogether
 * until a background probe reaches the tier again: requests skip the
 * tier's telemetry and keep their speed.
 */
import cache from 'k6/x/cache';
import {
  at, cleanupFaults, digest, drill, param, perGenerator, precondition, profile, seed, share, shareCount, signature,
  steady, tierProxies, unreachableOff, unreachableOn, window,
} from './lib/firedrill.js';

const beforeS = param('before');
const faultS = param('fault');
const afterS = param('after');
const rate = param('rate');
const calls = param('calls');
const rows = param('rows');
const slots = param('slots');
const timeoutMs = param('timeout');
const breaker = param('breaker');
const flag = param('flag');
const duration = beforeS + faultS + afterS;

// The incident's timeout: the signature's unit.
const incidentTimeoutMs = 2000;
// The requests that met the unreachable tier with all their calls: due from
// 1 s after the fault's start (the tier's servers are read once a second)
// until calls x the incident's timeout (and 2 s) before
// its end; a request due later finds the tier back before its last call.
const fullyCut = Math.max(2, faultS - (calls * incidentTimeoutMs) / 1000 - 2);

export const options = {
  setupTimeout: '120s',
  scenarios: {
    traffic: perGenerator('0s', 'traffic', `${duration + 60}s`),
    // startTime counts from the end of setup, when traffic starts.
    cut_off: at(`${beforeS}s`, 'cutOff'),
    redeploy: at(`${beforeS + faultS}s`, 'redeploy'),
  },
  // The phase "unreachable" is the fault's window. A request that waits
  // 250 ms or more for a serving slot is late.
  ext: drill({
    warmup: 5,
    windows: [
      window('cut_off', { of: 'unreachable', from: 1, to: fullyCut }),
      window('redeployed', { after: 'unreachable', from: 10, to: afterS }),
    ],
    checks: [
      precondition('requests were served before the tier was cut off', 'before', 'served_ratio >= 0.99'),
      // the tier's own count: no call reached it while it was cut off
      precondition('the tier was unreachable', 'cut_off', 'server_tier_cmd_get_rate <= 0.01 x before'),
      signature('requests take calls x timeout', 'cut_off', `request_p50 >= ${calls * incidentTimeoutMs}`,
        '004_c305d8cfd50f32dd.txt:5', { figure: 'about 60 ms to over 30 s a request: 2 s timeouts, many calls each' }),
      signature('serving capacity runs out', 'unreachable', 'late_ratio >= 0.1', '004_c305d8cfd50f32dd.txt:3',
        { figure: '"quickly took up all serving capacity"' }),
      signature('it recovers when the change is redeployed', 'redeployed', 'request_p99 <= 2 x before + 10',
        '004_c305d8cfd50f32dd.txt:4', { figure: 'the deployment was rolled back and the endpoints were back' }),
      steady('requests stay fast', 'unreachable', 'request_p99 <= 2 x before',
        { figure: 'a feature flag to opt in to the new functionality would have reduced it' }),
      steady('serving capacity holds', 'unreachable', 'late_ratio <= 0.01'),
      steady('requests are served', 'unreachable', 'served_ratio >= 0.99'),
      steady('requests stay fast after the redeploy', 'redeployed', 'request_p99 <= 2 x before + 10'),
    ],
  }),
};

export function setup() {
  cache.seed({ rows, seed });
}

export function traffic() {
  const s = cache.replay({
    rate: share(rate), duration: `${duration}s`, rows, keys: rows, warm: 0, ttl: '600s', seed,
    requestFraction: 1, requestCalls: calls, tierTimeout: `${timeoutMs}ms`, tierConnectTimeout: `${timeoutMs}ms`,
    maxInflight: shareCount(slots), lateAfter: '250ms', deadline: '60s', processes: shareCount(4), poolSize: 2,
    protections: { breaker, breakerCooldown: '2s', tierFlag: flag },
  });
  console.log(digest(`unreachable-dependency (${profile}, timeout ${timeoutMs} ms, breaker ${breaker}, flag ${flag})`, s));
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
