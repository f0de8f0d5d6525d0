// Shared parts of the drills: the profile, parameters from `firedrill run
// --set`, and the fault helpers every drill schedules with startTime.
import toxiproxy from 'k6/x/toxiproxy';

/** The profile `firedrill run` chose ("unprotected", "protected", "default"). */
export const profile = __ENV.FIREDRILL_PROFILE || 'default';

/** The drill's seed, so a run can be repeated. */
export const seed = parseInt(__ENV.FIREDRILL_SEED || '1', 10);

/**
 * A drill parameter: `firedrill run DRILL --set name=value` arrives as
 * FIREDRILL_NAME; def is used when it is not set. Numbers stay numbers.
 */
export function param(name, def) {
  const v = __ENV['FIREDRILL_' + name.toUpperCase().replace(/-/g, '_')];
  if (v === undefined || v === '') return def;
  if (typeof def === 'number') {
    const n = Number(v);
    if (Number.isNaN(n)) throw new Error(`parameter ${name}: ${JSON.stringify(v)} is not a number`);
    return n;
  }
  return v;
}

/** The memcached proxies' names, in server order. */
export function memcachedProxies() {
  const v = __ENV.FIREDRILL_MEMCACHED_PROXIES || '';
  if (v === '') throw new Error('FIREDRILL_MEMCACHED_PROXIES is not set: run the drill with `firedrill run`');
  return v.split(',');
}

/** A one-shot scenario that calls exec at startTime: a step of the fault timeline. */
export function at(startTime, exec) {
  return { executor: 'shared-iterations', vus: 1, iterations: 1, startTime, exec, maxDuration: '1m' };
}

/** Adds the same toxic to every proxy named. */
export function toxicOn(proxies, spec) {
  for (const p of proxies) toxiproxy.addToxic(p, spec);
}

/** Removes the toxic called name from every proxy named. */
export function toxicOff(proxies, name) {
  for (const p of proxies) toxiproxy.removeToxic(p, name);
}

/** Removes every toxic this run added: call it from teardown(). */
export function cleanupFaults() {
  toxiproxy.cleanup();
}
