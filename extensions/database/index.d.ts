/**
 * k6/x/database: database faults and protections for drills.
 *
 * Acts over FIREDRILL_MYSQL_ADMIN_DSN (a direct, root DSN, never the proxied
 * one, so network faults cannot block a removal). FIREDRILL_DB_FLAVOR
 * (mariadb|mysql) picks the SQL dialect (asked from the server when unset);
 * FIREDRILL_MYSQL_PROXY names the target in events (default "mysql").
 * Every statement has a 30 s timeout; every error throws. Calls are refused
 * in the init context. Each injection and removal adds 1 to the Counter
 * `firedrill_fault` tagged fault, action (inject|remove), target, name.
 *
 * Background work (DDL storm, query killer) runs in Go and stops when
 * stopped, when its maxDurationMs passes, or when the context of the VU
 * that started it ends, i.e. when that scenario ends. Start it and sleep()
 * in the same iteration of a fault scenario; or pass detached: true (with
 * maxDurationMs) to outlive the scenario, e.g. a protection started in
 * setup(). Call cleanup() in teardown().
 */

/** "mariadb" or "mysql". */
export function flavor(): "mariadb" | "mysql";

/**
 * Sets max_connections to n (fault connection_cap); returns the limit in
 * effect (MariaDB clamps to at least 10). New connections past it fail with
 * error 1040; open ones stay. One extra slot stays for SUPER users.
 */
export function capConnections(n: number): number;
/** Restores max_connections to its value before the first cap. */
export function restoreConnections(): void;

export interface IndexSpec {
  /** Default: the DSN's database. */
  schema?: string;
  table: string;
  index: string;
}

/**
 * Makes queries using the index full-scan (fault plan_regression, target
 * "schema.table", name = index). method "ignore" (default): MariaDB
 * ALTER INDEX .. IGNORED / MySQL INVISIBLE, instant both ways. "drop": drops
 * it; the revert rebuilds it. The primary key cannot be hidden.
 */
export function planRegression(spec: IndexSpec & { method?: "ignore" | "drop" }): void;
/**
 * Makes the index usable again. Scans started while it was lost hold the
 * table after their callers gave up; when the ALTER has waited 3 s for the
 * table, statements on it running 3 s or longer are killed (KILL QUERY) and
 * it tries again, within the injector's 30 s timeout.
 */
export function revertPlanRegression(spec: IndexSpec): void;

/**
 * Creates schemas `${prefix}0`..`${prefix}${count-1}` (prefix must start with
 * "firedrill_"), each with table items(id BIGINT AUTO_INCREMENT PRIMARY KEY,
 * tenant_id INT, qty INT, note VARCHAR(64), updated_at TIMESTAMP(6)) holding
 * `rows` rows. Replaces existing ones.
 */
export function createTenants(spec: { prefix: string; count: number; rows?: number }): void;
/** Drops every schema starting with prefix (must start with "firedrill_"); returns how many. */
export function dropTenants(prefix: string): number;

export interface StormOptions {
  /** Tenant schema prefix (from createTenants). Required; also the storm's handle. */
  prefix: string;
  /**
   * "direct" (default): ALTER TABLE .. MODIFY, blocking writes. "copy": shadow table, chunked copy, atomic RENAME
   * (loses updates made during the copy). "online": Percona's pt-online-schema-change on the host (percona-toolkit):
   * triggers carry every concurrent write, --max-load = throttleThreadsRunning, --critical-load = criticalThreadsRunning.
   */
  method?: "direct" | "copy" | "online";
  /** Column whose type changes; default "qty". */
  column?: string;
  /** Types alternated per pass; default ["BIGINT NOT NULL", "INT NOT NULL"]. */
  types?: string[];
  /** Migrations at once; default 2 (max 32). */
  concurrency?: number;
  /** Passes over all tenants; default 1. */
  passes?: number;
  /** Rows per copy chunk ("copy"); default 500. */
  chunkRows?: number;
  /** Pause between two migrations of one worker; default 0. */
  pauseMs?: number;
  /** Throttle on load: wait while Threads_running exceeds this (0 = off, default). */
  throttleThreadsRunning?: number;
  /** "online": abort a migration when Threads_running exceeds this (a safety limit, not the throttle); default 100. */
  criticalThreadsRunning?: number;
  /** "online": the time each copy chunk aims at (--chunk-time); default 100. */
  chunkTimeMs?: number;
  /** Stop on its own after this long; default 30 min. */
  maxDurationMs?: number;
  /** Outlive the starting scenario (needs maxDurationMs). */
  detached?: boolean;
}

export interface StormStats {
  migrations: number;
  failed: number;
  rowsCopied: number;
  throttledMs: number;
  running: boolean;
  error: string;
}

/** Starts a DDL storm in the background (fault ddl_storm, target prefix, name method); returns its handle (the prefix). */
export function startDDLStorm(opts: StormOptions): string;
export function ddlStormStats(handle: string): StormStats;
/** Stops the storm, waits for in-flight migrations (an ALTER finishes; a copy drops its shadow table). */
export function stopDDLStorm(handle: string): StormStats;

/**
 * Protection: global statement time limit (fault statement_limit, name = the
 * variable). MariaDB max_statement_time (every statement), MySQL
 * max_execution_time (SELECT only). Only connections opened afterwards get
 * it. 0 = no limit.
 */
export function setStatementLimit(ms: number): void;
export function restoreStatementLimit(): void;

export interface KillerOptions {
  /** Kill statements running longer than this. Required. */
  thresholdMs: number;
  /** Processlist scan period; default 100. MySQL counts whole seconds. */
  intervalMs?: number;
  /** Kills per scan at most; default 100. */
  maxPerScan?: number;
  /** Only statements starting with this (case-insensitive); default "SELECT". */
  prefix?: string;
  /** Only this user's statements; default any. */
  user?: string;
  /** Stop on its own after this long; default 1 h. */
  maxDurationMs?: number;
  /** Outlive the starting scenario (needs maxDurationMs). */
  detached?: boolean;
}

export interface KillerStats {
  killed: number;
  scans: number;
  running: boolean;
  error: string;
}

/** Protection: KILL QUERY every matching statement older than thresholdMs (fault query_killer). One at a time. */
export function startQueryKiller(opts: KillerOptions): void;
export function queryKillerStats(): KillerStats;
export function stopQueryKiller(): KillerStats;

/**
 * Waits until the server runs at most threadsRunning statements (default 2: this check's own and a
 * sampler's reading) in three polls 100 ms apart; returns the seconds waited. Throws when it is not
 * quiet within timeoutMs (default 60000). After a stampede the server still finishes the queries
 * their clients gave up on: wait before measuring the next thing.
 */
export function waitQuiet(opts?: { threadsRunning?: number; timeoutMs?: number }): number;

/** Stops storms and the killer, restores indexes, max_connections and the statement limit. Safe to call twice. */
export function cleanup(): void;

declare const database: {
  flavor: typeof flavor;
  capConnections: typeof capConnections;
  restoreConnections: typeof restoreConnections;
  planRegression: typeof planRegression;
  revertPlanRegression: typeof revertPlanRegression;
  createTenants: typeof createTenants;
  dropTenants: typeof dropTenants;
  startDDLStorm: typeof startDDLStorm;
  ddlStormStats: typeof ddlStormStats;
  stopDDLStorm: typeof stopDDLStorm;
  setStatementLimit: typeof setStatementLimit;
  waitQuiet: typeof waitQuiet;
  restoreStatementLimit: typeof restoreStatementLimit;
  startQueryKiller: typeof startQueryKiller;
  queryKillerStats: typeof queryKillerStats;
  stopQueryKiller: typeof stopQueryKiller;
  cleanup: typeof cleanup;
};
export default database;
