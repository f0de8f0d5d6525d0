/**
 * @drill     hot-key-expiry
 * @incident  000_e76083ecc6911798.txt
 * @summary   the hot set expires at one instant: a stampede of fills on the database, and each protection's effect on it
 * @expect    unprotected=broken protected=held
 * @nightly   table=none,leases
 * @param     rate         number  600                      fetches per second
 * @param     rows         number  20000                    records
 * @param     hot_set      number  50                       entries filled together and left to expire
 * @param     ttl          number  4                        seconds: their TTL; each replay lasts ttl + after
 * @param     after        number  4                        seconds each replay goes on after the TTL
 * @param     query_delay  number  300                      ms of database time per fill: the expensive miss path
 * @param     processes    number  8                        processes of the fleet
 * @param     pool_size    number  8                        database connections per process
 * @param     judge        string  none   protected=leases  the protection whose replay is judged (none, coalesce, fillLock, leases, staleWhileRevalidate, ttlJitter, xfetch)
 * @param     table        string  all                      all, or a comma-separated list of the protections to replay
 *
 * The stampede of incident 000 alone: the most popular entries, filled
 * together with one TTL and no jitter, expire at the same instant and every
 * reader of each of them misses and queries the database until one refill
 * lands; an expensive miss path stretches that window. The drill replays the
 * same expiry once per protection (none, coalescing, fill lock, leases,
 * stale-while-revalidate, TTL jitter, XFetch early refresh) and prints a
 * table of the database queries each let through; the peak query rate of
 * each is the phase "during protection <name>" in result.json. The
 * unprotected profile judges "none", the protected one "leases". TTL jitter
 * shortens TTLs by up to half, so within the fixed window it refills more
 * often: its row counts that too.
 */
import cache from 'k6/x/cache';
import { Gauge } from 'k6/metrics';
import {
  cleanupFaults, digest, drill, inFaultGenerator, inPhase, logTable, markFault, param, perGenerator, precondition,
  share, shareCount, signature, steady,
} from './lib/firedrill.js';

const rate = param('rate');
const rows = param('rows');
const hotSet = param('hot_set');
const ttlS = param('ttl');
const afterS = param('after');
const queryDelayMs = param('query_delay');
const processes = param('processes');
const poolSize = param('pool_size');
const judged = param('judge');
const table = param('table');

const all = {
  none: {},
  coalesce: { coalesce: true },
  fillLock: { fillLock: true, fillLockTries: 20 },
  leases: { leases: true, leaseTries: 50 },
  staleWhileRevalidate: { staleWhileRevalidate: '30s' },
  ttlJitter: { ttlJitter: 0.5 },
  xfetch: { xfetch: true, xfetchBeta: 2 },
};

const extraPerKey = new Gauge('firedrill_expiry_extra_queries_per_key');
const queries = new Gauge('firedrill_expiry_db_queries');

export const options = {
  setupTimeout: '120s',
  scenarios: {
    // Every generator replays its share of the fleet through the same
    // sequence; generator 0 marks the phases.
    traffic: perGenerator('0s', 'traffic', '10m'),
  },
  // "before" is the baseline replay, in which nothing expires; each
  // protection's replay is phase hot_set_expiry:<protection>, of the same
  // length. The judged one must cost the database fewer than one query per
  // hot key beyond one refill each (unprotected it measured about 3).
  ext: drill({
    checks: [
      precondition('the baseline served the offered load', 'before', 'served_ratio >= 0.98'),
      signature('the hot set\'s expiry sends a burst of queries', `hot_set_expiry:${judged}`,
        `db_queries >= 1 x before + ${2 * hotSet}`, '000_e76083ecc6911798.txt:5'),
      steady('the expiry costs about one refill per hot key', `hot_set_expiry:${judged}`,
        `db_queries < 1 x before + ${2 * hotSet}`),
      steady('fetches are served through the expiry', `hot_set_expiry:${judged}`, 'served_ratio >= 0.99'),
    ],
  }),
};

function replay(prot, ttl, warm) {
  return cache.replay({
    rate: share(rate), rows, keys: rows, hotSet, warm, ttl: `${ttl}s`, duration: `${ttlS + afterS}s`,
    queryDelay: `${queryDelayMs}ms`, cacheTimeout: '1s', processes: shareCount(processes), poolSize, seed: 7,
    protections: prot,
  });
}

export function setup() {
  cache.seed({ rows, seed: 7 });
}

export function traffic() {
  const marks = inFaultGenerator();
  const names = table === 'all' ? Object.keys(all) : table.split(',');
  if (!names.includes(judged)) names.push(judged);
  // The baseline caches every record for long; nothing expires in it.
  const base = inPhase('baseline', () => replay({}, 600, rows));
  console.log(digest('baseline (nothing expires)', base));
  const rowsOut = [];
  for (const name of names) {
    if (!(name in all)) throw new Error(`unknown protection ${name}: choose from ${Object.keys(all).join(', ')}`);
    if (marks) markFault('hot_set_expiry', 'inject', `top-${hotSet}`, name);
    const s = inPhase(name, () => replay(all[name], ttlS, hotSet));
    if (marks) markFault('hot_set_expiry', 'remove', `top-${hotSet}`, name);
    console.log(digest(name, s));
    const extra = (s.dbQueries - base.dbQueries - hotSet) / hotSet;
    extraPerKey.add(extra, { protection: name, judged: name === judged ? 'yes' : 'no' });
    queries.add(s.dbQueries, { protection: name });
    rowsOut.push({
      protection: name, db_queries: s.dbQueries, extra_per_hot_key: extra, vs_none: 0,
      db_p99_ms: s.dbP99Ms, fetch_p99_ms: s.fetchP99Ms, errors: JSON.stringify(s.errors),
    });
  }
  const none = rowsOut.find((r) => r.protection === 'none');
  for (const r of rowsOut) r.vs_none = none ? r.db_queries / Math.max(none.db_queries, 1) : NaN;
  logTable(`hot-key-expiry: database queries in the ${ttlS + afterS} s around the expiry of ${hotSet} hot keys ` +
    `(baseline without expiry: ${base.dbQueries}); judged: ${judged}`, rowsOut);
}

export function teardown() {
  cleanupFaults();
}
