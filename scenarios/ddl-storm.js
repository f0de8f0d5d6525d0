/**
 * @drill     ddl-storm
 * @incident  002_9f787c5b7da271ea.txt
 * @summary   many column-type ALTER TABLEs across small per-tenant schemas degrade the cluster's writes; copy-table migrations throttled on load do not
 * @expect    unprotected=broken protected=held
 * @nightly   duration=45 storm_from=10 storm=25
 * @param     duration               number  60                  seconds of traffic
 * @param     rate                   number  200                 operations per second
 * @param     write_fraction         number  0.05                share of record updates (and invalidations)
 * @param     tenant_write_fraction  number  0.4                 share of updates of tenant rows
 * @param     rows                   number  20000               records
 * @param     tenants                number  20                  tenant schemas
 * @param     tenant_rows            number  20000               rows per tenant table: each direct ALTER rebuilds this many, holding the table's writes
 * @param     storm_from             number  15                  seconds into traffic when the storm starts
 * @param     storm                  number  30                  seconds the storm runs
 * @param     concurrency            number  8      protected=1  migrations run at once
 *
 * Incident 002: thousands of direct column-type changes on small
 * per-workspace tables (each one a table rebuild) degraded writes on one
 * cluster until a failover. Here write traffic goes to the same per-tenant
 * tables (row updates across every tenant schema, beside read-through reads
 * and record writes) while a DDL storm changes a column's type across
 * them: unprotected, direct ALTERs at high concurrency, each a table
 * rebuild that blocks the table's writes; protected, copy-table migrations
 * (shadow table, chunked copy, atomic rename) at low concurrency that wait
 * while the server is busy (Threads_running), so writes only meet the
 * rename. The verdict is judged on the writes that arrived while the storm
 * ran (phase ddl_storm) against those of the calm before it.
 */
import cache from 'k6/x/cache';
import database from 'k6/x/database';
import { sleep } from 'k6';
import {
  at, cleanupFaults, digest, drill, param, perGenerator, precondition, profile, seed, share, shareCount, signature, steady,
} from './lib/firedrill.js';

const duration = param('duration');
const rate = param('rate');
const writeFraction = param('write_fraction');
const tenantWriteFraction = param('tenant_write_fraction');
const rows = param('rows');
const tenants = param('tenants');
const tenantRows = param('tenant_rows');
const stormFrom = param('storm_from');
const stormS = param('storm');
const protectedRun = profile === 'protected';
const concurrency = param('concurrency');
const prefix = 'firedrill_tenant_';

export const options = {
  setupTimeout: '300s',
  scenarios: {
    traffic: perGenerator('0s', 'traffic', `${duration + 60}s`),
    storm: Object.assign(at(`${stormFrom}s`, 'storm'), { maxDuration: `${stormS + 60}s` }),
  },
  ext: drill({
    checks: [
      precondition('the load was served before the storm', 'before', 'served_ratio >= 0.98'),
      precondition('tenant writes ran before the storm', 'before', 'offered{op=write} >= 10'),
      precondition('the storm migrated tenants', 'ddl_storm', 'duration_s >= 5'),
      signature('writes slow down while the DDL storm runs', 'ddl_storm', 'write_p99 >= 10 x before',
        '002_9f787c5b7da271ea.txt:12'),
      steady('writes stay fast during the storm', 'ddl_storm', 'write_p99 <= 2 x before + 10'),
      steady('writes are not lost during the storm', 'ddl_storm', 'served_ratio{op=write} >= 0.999'),
      steady('reads are served during the storm', 'ddl_storm', 'served_ratio{op=fetch} >= 0.999'),
    ],
  }),
};

export function setup() {
  cache.seed({ rows, seed });
  database.createTenants({ prefix, count: tenants, rows: tenantRows });
  // Every record cached before traffic starts, so the storm's startTime
  // counts from the start of traffic.
  cache.warm({ rows, keys: rows, warm: rows, ttl: '600s', seed });
}

export function traffic() {
  const s = cache.replay({
    rate: share(rate), duration: `${duration}s`, rows, keys: rows, warm: 0, ttl: '600s', seed,
    writeFraction, tenantWriteFraction, tenantPrefix: prefix, tenants, tenantRows,
    processes: shareCount(4), poolSize: 8, cacheTimeout: '1s', dbTimeout: '2s',
  });
  console.log(`writes: p50 ${s.writeP50Ms.toFixed(1)} ms, p99 ${s.writeP99Ms.toFixed(1)} ms, tenant writes ${s.tenantWrites}; errors by op ${JSON.stringify(s.opErrors)}`);
  console.log(digest(`ddl-storm (${profile})`, s));
}

export function storm() {
  const opts = protectedRun
    ? { prefix, method: 'copy', concurrency, chunkRows: 250, pauseMs: 1000, throttleThreadsRunning: 3, passes: 100, maxDurationMs: stormS * 1000 }
    : { prefix, method: 'direct', concurrency, passes: 100, maxDurationMs: stormS * 1000 };
  const h = database.startDDLStorm(opts);
  sleep(stormS);
  const st = database.stopDDLStorm(h);
  console.log(`ddl storm (${opts.method}, concurrency ${concurrency}): ${JSON.stringify(st)}`);
}

export function teardown() {
  database.cleanup();
  database.dropTenants(prefix);
  cleanupFaults();
}
