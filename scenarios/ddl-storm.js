/**
 * @drill     ddl-storm
 * @incident  002_9f787c5b7da271ea.txt
 * @summary   many column-type ALTER TABLEs across small per-tenant schemas degrade the cluster's writes; online schema changes (pt-online-schema-change) throttled on load do not
 * @expect    unprotected=broken protected=held
 * @nightly   duration=50 storm_from=10 storm=30
 * @host      pt-online-schema-change  percona-toolkit  protected
 * @param     duration               number  60                  seconds of traffic
 * @param     rate                   number  200                 operations per second
 * @param     write_fraction         number  0.05                share of record updates (and invalidations)
 * @param     tenant_write_fraction  number  0.4                 share of updates of tenant rows
 * @param     rows                   number  20000               records
 * @param     tenants                number  20                  tenant schemas
 * @param     tenant_rows            number  20000               rows per tenant table: each direct ALTER rebuilds this many, holding the table's writes
 * @param     storm_from             number  15                  seconds into traffic when the storm starts
 * @param     storm                  number  30                  seconds the storm may run: it must end within them
 * @param     concurrency            number  8      protected=1  migrations run at once
 * @param     passes                 number  100    protected=1  passes over every tenant (the direct storm runs until its window ends)
 * @param     pause                  number  0      protected=500  ms each migration worker waits before its next migration
 *
 * Incident 002: thousands of direct column-type changes on small
 * per-workspace tables (each one a table rebuild) degraded writes on one
 * cluster until a failover. Here write traffic goes to the same per-tenant
 * tables (row updates across every tenant schema, beside read-through reads
 * and record writes) while a DDL storm changes a column's type across
 * them. Unprotected: direct ALTERs at high concurrency, pass after pass
 * until the window ends, each a table rebuild that blocks the table's
 * writes. Protected: every tenant migrated once with Percona's
 * pt-online-schema-change (percona-toolkit on the host), one at a time,
 * --max-load Threads_running=3 as the throttle and --critical-load as the
 * safety limit; its triggers carry every write made during a copy, and the
 * application retries the deadlocks they cause (deadlockRetries). Both
 * profiles migrate every tenant, and the storm ends within its window. The
 * verdict is judged on the writes that arrived while the storm ran (phase
 * ddl_storm) against those of the calm before it, and on the tenant tables
 * at the end: no acknowledged write may be missing from them.
 */
import cache from 'k6/x/cache';
import database from 'k6/x/database';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import {
  at, cleanupFaults, digest, drill, integrity, param, perGenerator, precondition, profile, seed, share, shareCount,
  signature, steady,
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
const passes = param('passes');
const pauseMs = param('pause');
const prefix = 'firedrill_tenant_';

// what the storm did, for the preconditions: it migrated every tenant
const migrations = new Counter('firedrill_ddl_migrations');
const failedMigrations = new Counter('firedrill_ddl_failed');

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
      precondition('the storm ran', 'ddl_storm', 'duration_s >= 3'),
      precondition('the storm ended within its window', 'ddl_storm', `duration_s <= ${stormS + 2}`),
      precondition('every tenant was migrated', 'run', `firedrill_ddl_migrations >= ${tenants}`),
      precondition('no migration failed', 'run', 'firedrill_ddl_failed == 0'),
      signature('writes slow down while the DDL storm runs', 'ddl_storm', 'write_p99 >= 10 x before',
        '002_9f787c5b7da271ea.txt:12', { figure: 'a significant deterioration of writes: 25% of workspaces down for 31 min' }),
      // 2x before, with the 10 ms floor plan-regression's latency checks
      // have: a write's p99 here is 3-5 ms, and on 2 cores that run the
      // whole stack the host's scheduling moves it by more than 2x. Seen
      // 2026-12-03, short form, protected: 11.1 ms against 4.3 before
      // while the database's own counters showed it idle (Threads_running
      // 3, 0.057 busy s/s against 0.035 before, UPDATEs served 93/s). The
      // storm's signature is tens of times before (200-290 ms measured).
      steady('writes stay fast during the storm', 'ddl_storm', 'write_p99 <= 2 x before + 10',
        { figure: 'copy-table migrations: the other clusters "no major problems"' }),
      steady('writes are not lost during the storm', 'ddl_storm', 'served_ratio{op=write} >= 0.999'),
      steady('reads are served during the storm', 'ddl_storm', 'served_ratio{op=fetch} >= 0.999'),
      integrity('no acknowledged write is missing from the tenant tables'),
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
    // an application that migrates online retries the deadlocks the
    // tool's triggers and chunk copies cause beside its writes
    protections: protectedRun ? { deadlockRetries: 3 } : {},
  });
  console.log(`writes: p50 ${s.writeP50Ms.toFixed(1)} ms, p99 ${s.writeP99Ms.toFixed(1)} ms, tenant writes ${s.tenantWrites}; errors by op ${JSON.stringify(s.opErrors)}`);
  console.log(digest(`ddl-storm (${profile})`, s));
}

export function storm() {
  const common = { prefix, concurrency, passes, pauseMs, maxDurationMs: stormS * 1000 };
  const opts = protectedRun
    ? Object.assign({ method: 'online', throttleThreadsRunning: 3, criticalThreadsRunning: 100 }, common)
    : Object.assign({ method: 'direct' }, common);
  database.startDDLStorm(opts);
  // until it has migrated what it was given, or its window is over: by the
  // clock, as the precondition judges it (counting the sleeps alone let the
  // polls' own time push the end 1.75 s past a 30 s window under the direct
  // storm's load)
  const end = Date.now() + stormS * 1000;
  let st = database.ddlStormStats(prefix);
  while (st.running && Date.now() < end) {
    sleep(Math.min(0.25, Math.max(0, (end - Date.now()) / 1000)));
    st = database.ddlStormStats(prefix);
  }
  st = database.stopDDLStorm(prefix);
  migrations.add(st.migrations);
  failedMigrations.add(st.failed);
  console.log(`ddl storm (${opts.method}, concurrency ${concurrency}): ${JSON.stringify(st)}`);
}

// The tenant tables stay: the harness reads them after k6 for the
// integrity check, and the environment goes with the run
// (createTenants replaces them in a long-lived one).
export function teardown() {
  database.cleanup();
  cleanupFaults();
}
