// Shared parts of the drills: the profile, the parameters the header
// declares (@param, resolved by `firedrill run`), and the fault helpers
// every drill schedules with startTime.
import exec from 'k6/execution';
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import container from 'k6/x/container';
import toxiproxy from 'k6/x/toxiproxy';

/** The profile `firedrill run` chose ("unprotected", "protected", "default"). */
export const profile = __ENV.FIREDRILL_PROFILE || 'default';

/** The drill's seed, so a run can be repeated. */
export const seed = parseInt(__ENV.FIREDRILL_SEED || '1', 10);

// Every parameter the drill's header declares (@param), resolved by the
// harness for this run: declared default, the profile's default, the
// @nightly short form (--short), then --set.
const params = (() => {
  const v = __ENV.FIREDRILL_PARAMS;
  if (v === undefined || v === '') return null;
  try {
    return JSON.parse(v);
  } catch (e) {
    throw new Error(`FIREDRILL_PARAMS is not a JSON object (${e.message}): firedrill sets it; run the drill with \`firedrill run DRILL\``);
  }
})();

/**
 * The value of a parameter the drill's header declares, typed as declared
 * (number, string or bool):
 *
 *   @param rate number 200 operations per second
 *
 * `firedrill run DRILL --set rate=300` changes it; `firedrill list DRILL`
 * shows them all. The defaults live in the header, not here.
 */
export function param(name) {
  if (arguments.length !== 1) {
    throw new Error(`param('${name}', ...): a parameter's default is declared in the drill's header (@param ${name} TYPE DEFAULT description), not passed to param()`);
  }
  if (params === null) {
    throw new Error(`param('${name}'): FIREDRILL_PARAMS is not set: run the drill with \`firedrill run DRILL\` ` +
      '(it resolves the @param lines of the header), or give k6 the values yourself: ' +
      `k6 run -e FIREDRILL_PARAMS='{"${name}": ...}' (\`firedrill list DRILL\` shows every parameter)`);
  }
  if (!Object.prototype.hasOwnProperty.call(params, name)) {
    const known = Object.keys(params).sort();
    throw new Error(`param('${name}'): the drill's header declares no parameter ${name} ` +
      `(it declares ${known.length ? known.join(', ') : 'none'}): add "@param ${name} TYPE DEFAULT description" to it`);
  }
  return params[name];
}

/** The memcached proxies' names, in server order. */
export function memcachedProxies() {
  const v = __ENV.FIREDRILL_MEMCACHED_PROXIES || '';
  if (v === '') throw new Error('FIREDRILL_MEMCACHED_PROXIES is not set: run the drill with `firedrill run`');
  return v.split(',');
}

/** The proxies' names of the drill's second cache tier (@tier), in server order. */
export function tierProxies() {
  const v = __ENV.FIREDRILL_TIER_PROXIES || '';
  if (v === '') throw new Error('FIREDRILL_TIER_PROXIES is not set: declare "@tier N" in the drill\'s header and run it with `firedrill run`');
  return v.split(',');
}

/**
 * This k6 process's generator index and the number of generators
 * (`firedrill run --generators N` starts N k6 processes, each with its own
 * execution segment i/N). 0 and 1 when there is only one k6.
 */
export const generator = parseInt(__ENV.FIREDRILL_GENERATOR || '0', 10);
export const generators = Math.max(1, parseInt(__ENV.FIREDRILL_GENERATORS || '1', 10));

/**
 * True in the one generator that injects faults (generator 0). Faults
 * scheduled with at() need no check; code that injects a fault some other
 * way (setup, a traffic function) must call it only where this is true.
 */
export const isFaultGenerator = generator === 0;

/**
 * inFaultGenerator() is isFaultGenerator decided from k6's own execution
 * segment (true where the segment starts at 0, or without segments), so it
 * also holds on the k6-operator, whose runners share one environment and
 * get no FIREDRILL_GENERATOR. Call it from VU code (a scenario's function,
 * setup, teardown): k6 gives the options to the init context only later.
 */
export function inFaultGenerator() {
  const seg = exec.test.options.executionSegment;
  if (!seg) return true;
  const s = String(seg);
  const start = s.includes(':') ? s.split(':')[0].trim() : '0';
  if (start.endsWith('%')) return parseFloat(start) === 0;
  const [num, den] = start.split('/');
  return Number(num) / Number(den || 1) === 0;
}

/**
 * A one-shot scenario that calls exec at startTime: a step of the fault
 * timeline. It runs once in the whole test, whatever the number of
 * generators: one VU and one iteration cannot be split, and k6's execution
 * segments give that single iteration to the first segment, which is
 * generator 0 (isFaultGenerator); the other generators get 0 VUs for it
 * and skip it. The object is the same, and valid, in every generator (k6
 * rejects iterations: 0), so options.scenarios needs no condition. On the
 * k6-operator, where FIREDRILL_GENERATOR is not set per runner, the same
 * segmentation rule still runs it in one runner only (inFaultGenerator()
 * is the check that holds there too).
 */
export function at(startTime, exec) {
  return { executor: 'shared-iterations', vus: 1, iterations: 1, startTime, exec, maxDuration: '1m' };
}

/**
 * A scenario that runs exec once in every generator, at startTime: one VU
 * per generator (k6's execution segments give each generator one of the
 * `generators` VUs). Traffic and the steering of each generator's own
 * engine (a feature switch, an autoscaler, a format flip) run this way, so
 * `--generators N` and the k6-operator's parallelism split the load; faults
 * on shared servers run once, with at().
 */
export function perGenerator(startTime, exec, maxDuration) {
  return { executor: 'per-vu-iterations', vus: generators, iterations: 1, startTime, exec, maxDuration };
}

/** This generator's share of an amount the whole test offers (a rate). */
export function share(x) {
  return x / generators;
}

/** This generator's share of a count (processes, slots), at least 1. */
export function shareCount(n) {
  return Math.max(1, Math.round(n / generators));
}

/**
 * The work of one fill, calibrated so that a fill costs fillMs of the
 * database's CPU quota (its capacity is then 1000 / fillMs fills a
 * second, whatever the machine): a probe measures the capacity for a known
 * work, the work is scaled to the target, and the capacity for it is
 * measured again, and the work rescaled and measured up to four times more
 * while the capacity is more than 5% off the target (a fill's cost is
 * about proportional to the rows it reads). A fill may read the table
 * several times over (at most 64): bounding the work at one pass left
 * drills whose table is quicker to read than fillMs at a capacity up to
 * half again their target, silently. A capacity still more than 25% off
 * the target after that is an error: the drill's load would not be what
 * it declares. The last capacity measured is recorded
 * (firedrill_db_capacity). Call it from setup, after cache.seed;
 * replay options pass the result as fillWork. opts are the replay's
 * options (rows, keys, hotSet, seed, table).
 *
 * One scaling is not enough: the probe's one second runs on a cold buffer
 * pool and a busy host, and measured 148 to 346 fills/s for the same work
 * in twenty connection-storm runs (2026-12-02), which left the capacity
 * at 41 to 69 fills/s against a target of 50; at 69 an unprotected fleet
 * recovered where the drill's incident stays down.
 */
export function calibratedWork(cacheModule, opts, fillMs) {
  const rows = opts.rows;
  const probeWork = Math.min(rows, 20000);
  const probe = cacheModule.calibrate(Object.assign({}, opts, { fillWork: probeWork, connections: 4, duration: '1s' }));
  const target = 1000 / fillMs;
  const clamp = (w) => Math.max(100, Math.min(64 * rows, Math.round(w)));
  let work = clamp(probeWork * probe.fillsPerSecond / target);
  const steps = [];
  let c;
  for (let i = 0; i < 5; i++) {
    c = cacheModule.calibrate(Object.assign({}, opts, { fillWork: work, connections: 8, duration: '2s' }));
    steps.push(`${work} rows: ${c.fillsPerSecond.toFixed(0)}/s`);
    const next = clamp(work * c.fillsPerSecond / target);
    if (i === 4 || Math.abs(c.fillsPerSecond / target - 1) <= 0.05 || next === work) break;
    work = next;
  }
  console.log(`calibration: a fill reads ${work} rows: capacity ${c.fillsPerSecond.toFixed(0)} fills/s ` +
    `(target ${target.toFixed(0)}; the probe's ${probeWork} rows: ${probe.fillsPerSecond.toFixed(0)}/s; ${steps.join(', ')})`);
  if (Math.abs(c.fillsPerSecond / target - 1) > 0.25) {
    throw new Error(`calibration: capacity ${c.fillsPerSecond.toFixed(0)} fills/s is more than 25% off the target ` +
      `${target.toFixed(0)} (fill_ms ${fillMs}) after ${steps.length} steps (${steps.join(', ')}): the database is too ` +
      'slow or too busy for this fill_ms; run the drill on a quieter machine or set a larger fill_ms');
  }
  return { fillWork: work, capacity: c.fillsPerSecond };
}

/** Adds the same toxic to every proxy named. */
export function toxicOn(proxies, spec) {
  for (const p of proxies) toxiproxy.addToxic(p, spec);
}

/** Removes the toxic called name from every proxy named. */
export function toxicOff(proxies, name) {
  for (const p of proxies) toxiproxy.removeToxic(p, name);
}

// The port a proxy listens on inside the Toxiproxy container.
function listenPort(name) {
  const p = toxiproxy.proxies().find((x) => x.name === name);
  if (!p) throw new Error(`no Toxiproxy proxy named ${name}`);
  const port = parseInt(p.listen.slice(p.listen.lastIndexOf(':') + 1), 10);
  if (!(port > 0)) throw new Error(`proxy ${name} listens on ${p.listen}: no port`);
  return port;
}

/**
 * Makes every proxy named unreachable as a security group that drops a
 * fleet's SYNs does: packets to its port vanish in Toxiproxy's network
 * namespace, so a connect waits the client's own timeout and open
 * connections go silent (fault "unreachable"; a Toxiproxy toxic cannot do
 * this, Toxiproxy always accepts).
 */
export function unreachableOn(proxies) {
  for (const p of proxies) container.unreachable('toxiproxy', listenPort(p), p);
}

/** Undoes unreachableOn. */
export function unreachableOff(proxies) {
  for (const p of proxies) container.reachable('toxiproxy', listenPort(p), p);
}

/** Removes every toxic and network fault this run added: call it from teardown(). */
export function cleanupFaults() {
  toxiproxy.cleanup();
  container.cleanup();
}

// ---------------------------------------------------------------------------
// Checks: what decides a drill's verdict. A drill declares them in its
// options, `ext: drill({ checks: [...] })`; firedrill reads them with
// `k6 inspect` before the run and judges each on one phase of the run,
// on exact data (the traffic engine's ledger: every offered operation by
// its due time, with its outcome and latency). See the README's "Checks
// and verdicts" for the phases and metrics.

/**
 * The drill's verdict spec for options.ext: { warmup, windows, checks }.
 * warmup is the seconds of traffic (from its start) not judged.
 */
export function drill(spec) {
  return { firedrill: spec };
}

/** A precondition: must pass in every profile, or the run is invalid. */
export function precondition(name, phase, expr, extra) {
  return Object.assign({ name, kind: 'precondition', phase, expr }, extra);
}

/**
 * A signature of the incident, citing its report's line ("file:line"): a
 * profile declared broken passes only when every signature is observed.
 */
export function signature(name, phase, expr, incident, extra) {
  return Object.assign({ name, kind: 'signature', phase, expr, incident }, extra);
}

/** A steady state the protections must keep: a profile declared held passes only when every one holds. */
export function steady(name, phase, expr, extra) {
  return Object.assign({ name, kind: 'steady', phase, expr }, extra);
}

/**
 * An integrity check on the tenant writes (tenantWriteFraction): at the
 * end of the run the harness reads every tenant table the replays wrote
 * to, and for each the rise of its rows since the seed must lie between
 * the writes the database acknowledged and those sent to it (a write that
 * timed out may still have committed). A profile declared held passes
 * only when it holds; when the tables cannot be read the run is invalid.
 * The drill's teardown must leave the tenant tables in place.
 */
export function integrity(name, extra) {
  return Object.assign({ name, kind: 'integrity', phase: 'run', expr: 'integrity_violations == 0' }, extra);
}

/**
 * A phase of the drill's own, [from, to) seconds counted from the end of
 * phase `after` (e.g. { after: 'latency', from: 10, to: 40 }), from the
 * start of phase `of`, or from time zero when neither is given. It is cut
 * at the end of traffic.
 */
export function window(name, where) {
  return Object.assign({ name }, where);
}

// ---------------------------------------------------------------------------
// Phases and measurements shared by the incident drills.


// The extensions' fault counter: a drill marks a fault it applies through a
// replay option (not a steering call) on the same timeline.
const faultEvents = new Counter('firedrill_fault');

/** Records a fault injection or removal on the run's timeline: each fault opens a phase. */
export function markFault(fault, action, target, name) {
  const tags = { fault, action, target };
  if (name) tags.name = name;
  faultEvents.add(1, tags);
}

/** Records a step or a protection (not a fault) on the timeline: a marker, never a phase. */
export function markStep(step, action, target, name) {
  const tags = { fault: step, action, target, marker: 'true' };
  if (name) tags.name = name;
  faultEvents.add(1, tags);
}

/**
 * Runs fn with every metric this VU pushes (the cache engine's included:
 * it takes the VU's tags when replay starts) tagged phase=name, so a
 * threshold can judge one phase: `firedrill_errors{phase:expiry}`.
 */
export function inPhase(name, fn) {
  exec.vu.metrics.tags.phase = name;
  try {
    return fn();
  } finally {
    delete exec.vu.metrics.tags.phase;
  }
}

/** Database queries per second of a replay summary. */
export function dbRate(summary) {
  return summary.dbQueries / Math.max(summary.elapsedS, 1e-9);
}

/** Sum of a replay summary's errors, or of the classes named. */
export function errorCount(summary, ...classes) {
  let n = 0;
  for (const [cls, v] of Object.entries(summary.errors || {})) {
    if (classes.length === 0 || classes.includes(cls)) n += v;
  }
  return n;
}

/** Logs a table (rows of objects with the same keys) as aligned text. */
export function logTable(title, rows) {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]);
  const cell = (v) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v));
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals) => vals.map((v, i) => v.padStart(width[i])).join('  ');
  const out = [title, line(cols), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))];
  console.log(out.join('\n'));
}

/** A one-line digest of a replay summary for the log. */
export function digest(name, s) {
  return `${name}: ${s.operations} ops in ${s.elapsedS.toFixed(1)} s, hit ratio ${s.hitRatio.toFixed(3)}, ` +
    `db ${dbRate(s).toFixed(0)}/s (p99 ${s.dbP99Ms.toFixed(1)} ms), fetch p99 ${s.fetchP99Ms.toFixed(1)} ms ` +
    `max ${s.fetchMaxMs.toFixed(0)} ms, late ${s.late}, errors ${JSON.stringify(s.errors)}` +
    (Object.keys(s.firstErrors || {}).length ? `, first of each: ${JSON.stringify(s.firstErrors)}` : '');
}

// ---------------------------------------------------------------------------
// Drills of a service under test (@app): HTTP traffic with k6's own k6/http,
// judged by the harness on every request's http_req_duration sample, by
// the second it was sent (http_p99, http_served_ratio, ...).

/** The service under test's base URL: its only release, or the head release. */
export const appURL = __ENV.FIREDRILL_APP_URL || '';

/** The base and head releases' URLs when two run side by side (--app base=... --app head=...). */
export const appBaseURL = __ENV.FIREDRILL_APP_BASE_URL || '';
export const appHeadURL = __ENV.FIREDRILL_APP_HEAD_URL || '';

/**
 * An open-loop HTTP traffic scenario: k6's constant-arrival-rate executor
 * calling exec `rate` times a second for `duration` seconds, whatever the
 * latency. Its VUs are preallocated for the slowest expected request
 * (rate x slowestS, plus a few): a request that finds no free VU is
 * dropped, and the harness makes dropped_iterations == 0 a precondition.
 * Split over generators like share().
 */
export function arrivals(exec, { rate, duration, slowestS, startTime }) {
  const vus = shareCount(Math.ceil(rate * slowestS) + 4);
  return {
    executor: 'constant-arrival-rate', exec, rate: Math.max(1, Math.round(share(rate))), timeUnit: '1s',
    duration: `${duration}s`, preAllocatedVUs: vus, maxVUs: vus, startTime: startTime || '0s',
    gracefulStop: `${Math.ceil(slowestS) + 5}s`,
  };
}

// mulberry32: a small seeded generator, so a drill's request sequence can
// be repeated (--seed).
function mulberry32(a) {
  return function next() {
    a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The request a drill sends, declared by its parameters so that a service
 * with other routes can be driven without editing the drill:
 *
 *   method   GET, POST, ...
 *   path     a template: {id} is an id drawn from a Zipf distribution over
 *            1..ids with exponent `zipf` (id 1 the most popular, the hot set
 *            the lowest ids)
 *   headers  "Name:value,Name:value" (a parameter value is one word)
 *   body     sent as is, {id} replaced too ("" for none)
 *   timeout  ms before k6 gives up on a request (class timeout)
 */
export function requestShape({ method, path, headers, body, ids, zipf, timeout }) {
  if (!path.startsWith('/')) throw new Error(`request path ${path}: want a path such as /items/{id}`);
  const hdrs = {};
  for (const h of (headers || '').split(',')) {
    if (h.trim() === '') continue;
    const i = h.indexOf(':');
    if (i <= 0) throw new Error(`request headers ${headers}: want Name:value,Name:value`);
    hdrs[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  // The Zipf CDF over 1..ids, built once per VU (init code).
  const cdf = new Float64Array(ids);
  let sum = 0;
  for (let k = 1; k <= ids; k++) {
    sum += 1 / Math.pow(k, zipf);
    cdf[k - 1] = sum;
  }
  for (let k = 0; k < ids; k++) cdf[k] /= sum;
  let rand = null;
  return {
    method: method.toUpperCase(), path, headers: hdrs, body: body || null, timeout,
    /** An id drawn from the Zipf distribution. */
    id() {
      if (rand === null) rand = mulberry32((seed * 7919) ^ (exec.vu.idInTest * 104729));
      const u = rand();
      let lo = 0;
      let hi = ids - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[mid] < u) lo = mid + 1;
        else hi = mid;
      }
      return lo + 1;
    },
    /** A random number in [0, 1) from the VU's seeded generator. */
    random() {
      if (rand === null) rand = mulberry32((seed * 7919) ^ (exec.vu.idInTest * 104729));
      return rand();
    },
  };
}

/**
 * Sends one request of shape to baseURL, tagged with its release (app, base
 * or head) so checks can select by it (http_p99{release=head}).
 */
export function send(shape, baseURL, release) {
  if (!baseURL) throw new Error('send: no service URL: run the drill with `firedrill run DRILL --app IMAGE` (FIREDRILL_APP_URL)');
  const id = String(shape.id());
  const url = baseURL + shape.path.replaceAll('{id}', id);
  const body = shape.body === null ? null : shape.body.replaceAll('{id}', id);
  return http.request(shape.method, url, body, {
    headers: shape.headers, timeout: `${shape.timeout}ms`,
    // One name for every id: k6 would otherwise keep a series per URL.
    tags: { name: shape.path, release: release || 'app' },
  });
}

/**
 * A rolling deploy from the base release to the head release: the share
 * of requests sent to head grows linearly from 0 at `from` to 1 at
 * `from + over` seconds of traffic; with `hold`, head serves that share of
 * requests from `from` to `from + over` (a deploy paused part way, as
 * rolling deploys often are) and all of them after. Its start and end are
 * a fault window on
 * the timeline ("deploy"), so the mixed-version window is a phase; a
 * drill schedules them with at() and re-exports the two functions:
 *
 *   export { deployStart, deployEnd } from './lib/firedrill.js';
 *   const rollout = deploy({ from: 10, over: 20 });
 *   scenarios: { ...rollout.scenarios, traffic: arrivals('request', ...) }
 *   export function request() { rollout.send(shape); }
 */
export function deploy({ from, over, hold }) {
  if (hold !== undefined && !(hold > 0 && hold <= 1)) {
    throw new Error(`deploy: hold ${hold}: want head's share while the deploy is under way, in (0, 1]`);
  }
  return {
    scenarios: {
      deploy_start: at(`${from}s`, 'deployStart'),
      deploy_end: at(`${from + over}s`, 'deployEnd'),
    },
    /** The share of requests going to head now. */
    share() {
      const t = (Date.now() - exec.scenario.startTime) / 1000;
      if (hold !== undefined) return t < from ? 0 : (t < from + over ? hold : 1);
      return Math.min(1, Math.max(0, (t - from) / over));
    },
    /** Sends one request of shape to base or head, by the deploy's progress. */
    send(shape) {
      if (!appBaseURL || !appHeadURL) {
        throw new Error('deploy: the run has no base and head releases: run the drill with --app base=IMAGE --app head=IMAGE');
      }
      const head = shape.random() < this.share();
      return send(shape, head ? appHeadURL : appBaseURL, head ? 'head' : 'base');
    },
  };
}

/** The start of a rolling deploy (scheduled by deploy()). */
export function deployStart() {
  markFault('deploy', 'inject', 'base->head');
}

/** The end of a rolling deploy: every request goes to head. */
export function deployEnd() {
  markFault('deploy', 'remove', 'base->head');
}
