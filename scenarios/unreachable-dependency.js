/**
 * @drill     unreachable-dependency
 * @incident  004_c305d8cfd50f32dd.txt
 * @summary   a cache server is blackholed from the fleet: every call to it waits the client timeout, requests pile up and serving capacity runs out
 * @expect    unprotected=broken protected=held
 * @nightly   duration=40 fault_from=10 fault_to=28
 * @param     duration        number  60                    seconds of traffic
 * @param     rate            number  300                   requests (fetch or fetch_multi) per second
 * @param     rows            number  20000                 records
 * @param     fault_from      number  15                    seconds into traffic when the server is blackholed
 * @param     fault_to        number  40                    seconds into traffic when it is back
 * @param     slots           number  200                   serving capacity: requests in flight at most
 * @param     timeout         number  2000   protected=200  ms: client timeout per call (and per connect)
 * @param     breaker         number  0      protected=5    consecutive failures that open a server's circuit breaker (0: none)
 * @param     multi_fraction  number  0.3                   share of requests that are fetch_multi
 * @param     multi_size      number  6                     keys per fetch_multi
 *
 * Incident 004: a new cache was unreachable from the web fleets; each call
 * waited a 2 s timeout and a request made several calls, so requests went
 * from ~60 ms to over 30 s and used up every serving slot until the change
 * was rolled back. Here one memcached server's proxy holds every byte (a
 * Toxiproxy `timeout` toxic) for a window: unprotected, calls wait the 2 s
 * timeout (a miss waits twice: get, then set; a fetch_multi once per key it
 * sets), the fleet's serving slots (maxInflight) fill and every request
 * starts late. Protected, a short connect and call timeout bounds the first
 * calls, and a circuit breaker per server then fails calls to the dead one
 * fast, so the fleet degrades to database reads and keeps its capacity.
 */
import cache from 'k6/x/cache';
import {
  at, cleanupFaults, digest, drill, memcachedProxies, param, perGenerator, precondition, profile, seed, share, shareCount, signature,
  steady, toxicOff, toxicOn,
} from './lib/firedrill.js';

const duration = param('duration');
const rate = param('rate');
const rows = param('rows');
const faultFrom = param('fault_from');
const faultTo = param('fault_to');
const slots = param('slots');
const timeoutMs = param('timeout');
const breaker = param('breaker');
const multiFraction = param('multi_fraction');
const multiSize = param('multi_size');

export const options = {
  setupTimeout: '120s',
  scenarios: {
    traffic: perGenerator('0s', 'traffic', `${duration + 60}s`),
    // startTime counts from the end of setup, when traffic starts.
    blackhole_on: at(`${faultFrom}s`, 'blackholeOn'),
    blackhole_off: at(`${faultTo}s`, 'blackholeOff'),
  },
  // The phase "timeout" is the blackhole's window (a Toxiproxy timeout
  // toxic). A request that waits 250 ms or more for a serving slot is late.
  ext: drill({
    checks: [
      precondition('requests were served before the blackhole', 'before', 'served_ratio >= 0.98'),
      signature('requests take calls x timeout', 'timeout', `fetch_p99 >= 10 x before + ${timeoutMs}`,
        '004_c305d8cfd50f32dd.txt:3', { figure: 'about 60 ms to over 30 s a request (500x): 2 s timeouts, many calls each' }),
      signature('serving capacity runs out', 'timeout', 'late_ratio >= 0.1', '004_c305d8cfd50f32dd.txt:3',
        { figure: '"quickly took up all serving capacity"' }),
      steady('requests stay fast', 'timeout', 'fetch_p99 <= 2 x before + 250',
        { figure: 'a feature flag or per-region rollout would have reduced it' }),
      steady('serving capacity holds', 'timeout', 'late_ratio <= 0.02'),
      steady('requests are served', 'timeout', 'served_ratio >= 0.99'),
    ],
  }),
};

// The blackholed server: the last one, as a new cache added to the ring.
function target() {
  const ps = memcachedProxies();
  return [ps[ps.length - 1]];
}

const toxic = 'blackhole';

export function setup() {
  cache.seed({ rows, seed });
}

export function traffic() {
  const s = cache.replay({
    // No warm-up fill: with a short timeout one slow set would fail it; the
    // cache fills from traffic before the fault window.
    rate: share(rate), duration: `${duration}s`, rows, keys: rows, warm: 0, ttl: '600s', seed,
    multiFraction, multiSize, maxInflight: shareCount(slots), lateAfter: '250ms',
    cacheTimeout: `${timeoutMs}ms`, cacheConnectTimeout: `${timeoutMs}ms`,
    processes: shareCount(4), poolSize: 8,
    protections: { breaker, breakerCooldown: '2s' },
  });
  console.log(digest(`unreachable-dependency (${profile}, timeout ${timeoutMs} ms, breaker ${breaker})`, s));
  console.log(`breaker opened ${s.breakerOpens} times`);
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
