/**
 * k6/x/cache — replays an IdentityCache-shaped fleet's cache traffic
 * (memcached + MySQL/MariaDB read-through) in Go. JS starts and steers it;
 * no JS runs per cache operation.
 *
 * Endpoints default to the harness's environment: FIREDRILL_MEMCACHED
 * (proxied, traffic), FIREDRILL_MEMCACHED_DIRECT (admin), FIREDRILL_TIER
 * (the cache tier requests call, proxied), FIREDRILL_MYSQL_DSN (traffic),
 * FIREDRILL_MYSQL_ADMIN_DSN (seeding), FIREDRILL_SEED, FIREDRILL_HDR_OUT.
 *
 * Durations are strings ("30s", "250ms") or numbers of milliseconds.
 * Every function throws on an unknown option or a bad value, naming it.
 *
 * Metrics (pushed at most once per 100 ms per tag set):
 *  Counters cache_fetches, cache_hits, cache_misses {process, server, format},
 *  db_queries, cache_coalesced, cache_fill_waits, cache_stale_served,
 *  cache_lease_won, cache_early_refreshes, db_lookups, db_tenant_writes, cache_requests,
 *  cache_tier_calls, cache_tier_flag_offs, cache_tier_skipped {process}, cache_late,
 *  cache_breaker_opens (the cache's and the tier's),
 *  firedrill_errors {class: timeout|too_many_connections|refused|reset|decode|shed|breaker_open|deadline|other,
 *    op: fetch|write|lookup|request},
 *  firedrill_fault {fault, action: inject|remove, target, name?} (one per steering call).
 *  Trends cache_fetch_ms, db_query_ms (fills and writes), db_lookup_ms, db_write_ms, cache_request_ms: ONE sample per 100 ms interval = that
 *  interval's p99, so `p(99)<X` means "at most 1% of intervals had p99 > X".
 *  Exact latency distributions: FIREDRILL_HDR_OUT NDJSON (HDR histograms per second).
 *  Gauges db_inflight (peak in the interval), db_connections.
 *  Counters db_retries, db_retries_denied: reads the retry layer retried, and retries its budget refused.
 *  Each protection's counters are listed in its Spec (traffic/protect_*.go).
 */

export type Duration = string | number;

export interface SeedOptions {
  /** Default FIREDRILL_MYSQL_ADMIN_DSN, else FIREDRILL_MYSQL_DSN. */
  dsn?: string;
  /** Default "cache_records". */
  table?: string;
  /** Default 1000000. */
  rows?: number;
  /** Default FIREDRILL_SEED or 1. */
  seed?: number;
  /** Payload bytes, uniform in [payloadMin, payloadMax]; defaults 64 and 512. */
  payloadMin?: number;
  payloadMax?: number;
  /** Rows per INSERT (default 2000) and parallel connections (default 2). */
  batch?: number;
  workers?: number;
  /** Reseed even when the table already holds the same seed (default false). */
  force?: boolean;
}

export interface SeedResult {
  reused: boolean;
  rows: number;
  elapsedMs: number;
  table: string;
}

/**
 * The protections (traffic/protect_*.go, one file each). Each key belongs to
 * one protection; its own name turns it on. Combinations that cannot work are
 * refused with an error naming both: fillLock with leases; fillLock, leases or
 * coalesce with fetch_multi (multiFraction), which IdentityCache reads in one
 * query with no lock. A test keeps this list and its defaults equal to the
 * registry's.
 */
export interface Protections {
  /** A circuit breaker per memcached server: after this many failures in a row, calls fail fast (class breaker_open; fetches read the database); the tier's servers have their own (default 0). */
  breaker?: number;
  /** How long an open breaker fails fast before one trial call (default "1s"). */
  breakerCooldown?: Duration;
  /** One fill per key at a time inside a process; the other callers share its result (default false). */
  coalesce?: boolean;
  /** Readers decode both cache formats, so a format flip does not turn entries into misses (default false). */
  compatRead?: boolean;
  /** At most this many database queries at once per process; the rest are shed (class shed), not queued (default 0). */
  dbLimit?: number;
  /** Retry a database call InnoDB rolled back as a deadlock's victim (error 1213) up to this many times (default 0). */
  deadlockRetries?: number;
  /** IdentityCache's fill lock: one filler per key across processes (default false). */
  fillLock?: boolean;
  /** A fill lock loser's wait between re-reads (default "50ms"). */
  fillLockWait?: Duration;
  /** How many times a fill lock loser re-reads before reading the database (default 3). */
  fillLockTries?: number;
  /** memcached leases (mg N): the first reader of a missing key fills it, the others wait (default false). */
  leases?: boolean;
  /** How long a lease's placeholder lives (default "3s"). */
  leaseTTL?: Duration;
  /** A lease loser's first wait between re-reads (default "20ms"). */
  leaseWait?: Duration;
  /** Each further wait doubles, up to this (default "20ms"); at most leaseWait keeps the wait fixed: fewer re-reads while a slow fill runs. */
  leaseMaxWait?: Duration;
  /** How many times a lease loser re-reads before reading the database (default 5). */
  leaseTries?: number;
  /** At most this many retries per first attempt, per process, over retryBudgetWindow (default 0). */
  retryBudget?: number;
  /** The retry budget's sliding window (default "10s"). */
  retryBudgetWindow?: Duration;
  /** The wait before the first retry, doubling each time up to 10s (default "0s"). */
  retryBackoff?: Duration;
  /** Shorten each retry's wait by a random fraction in [0, retryJitter); true is 1, full jitter (default 0). */
  retryJitter?: boolean | number;
  /** Serve an entry this long past its expiry while one refresh per key runs in the background (default "0s"). */
  staleWhileRevalidate?: Duration;
  /** A fleet-wide feature flag in front of the cache tier: a tier call that times out, is refused or reset, or meets an open breaker turns it off (tierFlagOffs); while off, requests skip their tier calls (tierSkipped); a probe turns it back on when the tier answers (default false). */
  tierFlag?: boolean;
  /** While the flag is off, the tier is probed with one get this often (default "1s"). */
  tierFlagProbe?: Duration;
  /** Shorten each TTL by a random fraction in [0, ttlJitter), so entries filled together expire apart (default 0). */
  ttlJitter?: number;
  /** XFetch: refresh an entry early, with a probability growing as its expiry nears (default false). */
  xfetch?: boolean;
  /** XFetch's eagerness (default 1). */
  xfetchBeta?: number;
}

export interface ReplayOptions {
  /** Proxied memcached addresses, default FIREDRILL_MEMCACHED. */
  memcached?: string | string[];
  /** Direct addresses in the same order, default FIREDRILL_MEMCACHED_DIRECT. */
  memcachedDirect?: string | string[];
  /** Default FIREDRILL_MYSQL_DSN. */
  dsn?: string;
  /** The database without the proxy, for steering (refillHotSet); default FIREDRILL_MYSQL_ADMIN_DSN, else dsn. */
  adminDsn?: string;
  /** Default "cache_records". */
  table?: string;
  /** Operations (fetch, fetch_multi, write, lookup or request) per second, default 1000; the start rate when stages ramp. */
  rate?: number;
  /** Default "30s", or the stages' total when stages are given without it. */
  duration?: Duration;
  /** Linear ramps of the rate, as k6's ramping-arrival-rate; the last target holds. setRate() ends the ramp. */
  stages?: { duration: Duration; target: number }[];
  /** "uniform" (default) or "poisson". */
  arrivals?: "uniform" | "poisson";
  /** DB rows, default 1000000 (must match seed). */
  rows?: number;
  /** Keyspace, default rows; id k reads row k mod rows + 1 (up to 5e9 and beyond). */
  keys?: number;
  /** Zipf exponent in (0,1), default 0.99. */
  theta?: number;
  /** Number of most popular keys expireHotSet acts on, default 100. */
  hotSet?: number;
  /** Keep writes off the hotSet most popular records (default false: writes are Zipf, as reads). */
  hotSetReadOnly?: boolean;
  /** Most popular keys filled at start with one TTL, default hotSet. */
  warm?: number;
  /** Entry TTL, default "60s". */
  ttl?: Duration;
  /** Fleet size P (default 4) and DB pool per process S (default 10). */
  processes?: number;
  poolSize?: number;
  /** Close pooled DB connections unused this long (default 0: kept open), so the connections open follow the load. */
  poolIdle?: Duration;
  /**
   * Pooled DB connections a process keeps open unused (default 0: all poolSize). 1 closes a second
   * connection when its query ends: the connections open are one per process plus the queries running.
   */
  poolIdleConns?: number;
  /** Concurrent operations cap, default 1024. */
  maxInflight?: number;
  /** Share of fetch_multi operations (default 0) and keys each (default 10). */
  multiFraction?: number;
  multiSize?: number;
  /** Share of writes (update + invalidate), default 0. */
  writeFraction?: number;
  /** Share of uncached lookups by the indexed ref column (SELECT ... WHERE ref = ?), default 0. */
  lookupFraction?: number;
  /** Share of updates of one row of one tenant's table (tenantPrefix<i>.items, as database.createTenants makes them), default 0. */
  tenantWriteFraction?: number;
  /**
   * Share of requests, default 0: each calls the cache tier requestCalls times in sequence (a get, and a set when it
   * missed), touches no database, and is served however its calls end (a failed call is counted under op "request"
   * and the request goes on, as Rails.cache rescues errors). Needs the tier's servers.
   */
  requestFraction?: number;
  /** Tier calls per request, default 15. */
  requestCalls?: number;
  /** Proxied addresses of the cache tier's servers, default FIREDRILL_TIER (a drill asks for them with "@tier N"). */
  tier?: string | string[];
  /** Per round trip to the tier, default "2s"; dial timeout per tier connection, default "2s". */
  tierTimeout?: Duration;
  tierConnectTimeout?: Duration;
  /** The tenant schemas: prefix (default "firedrill_tenant_"), count (10) and rows each (1000); must match createTenants. */
  tenantPrefix?: string;
  tenants?: number;
  tenantRows?: number;
  /** Initial format, "legacy" (default) or "current"; flipFraction of processes start on the other (default 0). */
  format?: "legacy" | "current" | "6.1" | "7.0";
  flipFraction?: number;
  /** Default FIREDRILL_SEED or 1. */
  seed?: number;
  /** Start delay counted as late, default "10ms". */
  lateAfter?: Duration;
  /**
   * The caller's request timeout: an operation answered later than this after it came due is not
   * served but failed, class "deadline" (default "2s"; "0s": no deadline).
   */
  deadline?: Duration;
  /** Per round trip to memcached, default "500ms"; per DB query, default "1s". */
  cacheTimeout?: Duration;
  dbTimeout?: Duration;
  /**
   * Gets and sets over one multiplexed meta-protocol connection per server (~2x gets per CPU-second);
   * a request that times out fails alone and the connection is kept, unless it answers nothing for
   * max(2 x cacheTimeout, 1s). Default true; false: every command over the per-connection pool.
   */
  cacheMux?: boolean;
  /** Connections per memcached server, default 64; a tier server takes up to max(cacheConns, maxInflight), one per request in flight. */
  cacheConns?: number;
  /** Dial timeout per memcached connection, default "250ms". */
  cacheConnectTimeout?: Duration;
  /** Key parts: namespace (""), cacheVersion (8), model ("Record"), schemaHash (hash of the table's columns). */
  namespace?: string;
  cacheVersion?: number;
  model?: string;
  schemaHash?: string;
  /** Lifetime of the entries `warm` fills, default ttl: a short one makes them expire once, together, while refills live ttl. */
  warmTtl?: Duration;
  /**
   * Warm the entries as a cache in its steady state holds them (default false): remaining TTLs uniform in [1s, warmTtl],
   * or with ttlJitter the residuals of refills' lives, and in a replay without the entries a rare read would still be
   * waiting to refill.
   */
  warmSpread?: boolean;
  /**
   * Share of the warmed entries left out at random (default 0): a cache in the steady state of invalidating writes,
   * where each key is absent w/(r+w) of the time; the hot set stays whole when writes stay off it (hotSetReadOnly).
   */
  warmAbsent?: number;
  /**
   * Rows of the records table each fill reads besides its own (a SUM over the first fillWork ids),
   * default 0: an expensive miss path that is real work on the database's CPU, so its latency grows
   * with the queries running beside it under the container's CPU quota. Past rows it reads the
   * table in passes; at most 64 x rows.
   */
  fillWork?: number;
  /** A wait per fill query (SLEEP) that costs the database nothing: for tests; drills use fillWork. Default 0. */
  queryDelay?: Duration;
  /**
   * The app's retry layer around fill reads: up to `retries` extra attempts per read, at once
   * (default 0 = off); the protection retryBudget adds a backoff, jitter and a budget. Only a
   * read's last error counts in firedrill_errors.
   */
  retries?: number;
  /** Metric push interval, default and minimum "100ms". */
  interval?: Duration;
  /** HDR NDJSON output path, default FIREDRILL_HDR_OUT. */
  hdrOut?: string;
  protections?: Protections;
}

export interface ReplaySummary {
  operations: number;
  unsent: number;
  fetches: number;
  hits: number;
  misses: number;
  hitRatio: number;
  dbQueries: number;
  /** database reads of the hot set's records (the hotSet most popular keys) */
  dbHotReads: number;
  late: number;
  /** The protections' counters (whether on or not). */
  coalesced: number;
  fillWaits: number;
  staleServed: number;
  leaseWon: number;
  earlyRefreshes: number;
  breakerOpens: number;
  retriesDenied: number;
  deadlockRetries: number;
  errors: { [cls: string]: number };
  /** Errors by the operation that failed: fetch, write, lookup, request (a request's failed tier calls). */
  opErrors: { [op: string]: number };
  /** The first error message of each class (what "other" was, say). */
  firstErrors: { [cls: string]: string };
  lookups: number;
  lookupP50Ms: number;
  lookupP99Ms: number;
  /** Requests, the tier calls they made (skipped ones are not made), and their latency from their due times. */
  requests: number;
  tierCalls: number;
  requestP50Ms: number;
  requestP99Ms: number;
  /** The feature flag tierFlag: times it turned off, and tier calls skipped while it was off. */
  tierFlagOffs: number;
  tierSkipped: number;
  tenantWrites: number;
  /** Latency of writes (updates of records and of tenant rows). */
  writeP50Ms: number;
  writeP99Ms: number;
  fetchP50Ms: number;
  fetchP99Ms: number;
  fetchP999Ms: number;
  fetchMaxMs: number;
  dbP50Ms: number;
  dbP99Ms: number;
  elapsedS: number;
  processes: number;
  achievedRate: number;
  /** Reads the retry layer retried. */
  retries: number;
}

/** Creates the records table, or reuses it when seeded with the same parameters. */
export function seed(options?: SeedOptions): SeedResult;

/** Runs the open-loop replay in Go; blocks the calling VU until duration passes. One replay per k6 process at a time. */
export function replay(options?: ReplayOptions): ReplaySummary;

/**
 * Fills the `warm` most popular entries (with the replay's key and format
 * options) without replaying traffic: call it from setup(), so traffic and
 * every fault's startTime begin with a warm cache, and replay with warm: 0.
 */
export function warm(options?: ReplayOptions): { keys: number; elapsedMs: number };

/** What calibrate measured: the fills a second the database served when kept busy. */
export interface Capacity {
  fillsPerSecond: number;
  /** A fill's latency with `connections` running at once. */
  meanMs: number;
  p99Ms: number;
  connections: number;
  fillWork: number;
}

/**
 * Measures the database's capacity for the fills a replay with these options makes (fillWork
 * included): `connections` (default 8) run fills back to back on random records for `duration`
 * (default "3s"). Sets the gauge firedrill_db_capacity, which the result records: call it from
 * setup() and express the load as a share of it, so a verdict does not depend on the machine.
 */
export function calibrate(options?: ReplayOptions & { connections?: number; duration?: Duration }): Capacity;

/** Expires the top `keys` (default hotSet) entries at one instant. Fault: hot_set_expiry. */
export function expireHotSet(options?: { keys?: number; name?: string }): { keys: number; elapsedMs: number };

/**
 * Stores the hot set (keys: default the replay's hotSet) with one short TTL, directly on the
 * servers, as the protections shape TTLs: left alone it expires all at once. It acts on the
 * shared cache: call it from one generator (at()) and mark the window with markFault.
 */
export function refillHotSet(options: { keys?: number; ttl: Duration; name?: string }): { keys: number; elapsedMs: number };

/**
 * Deletes `keys` on every memcached server at once, at their direct
 * addresses (FIREDRILL_MEMCACHED_DIRECT, past Toxiproxy): the hot-set expiry
 * of a service under test, whose client places keys with its own hashing.
 * Needs no replay. Returns how many were present. Mark the window with
 * markFault('hot_set_expiry', ...).
 */
export function expireKeys(options: { keys: string[] }): { keys: number; present: number; servers: number; elapsedMs: number };

/** Moves `fraction` of the fleet to the other cache format (0 rolls back). Fault: format_flip. */
export function flipFormat(options: { fraction: number; name?: string }): { fraction: number };

/** Changes the fleet size. Fault: scale. */
export function scale(options: { processes: number; name?: string }): { before: number; processes: number };

/** Changes the arrival rate. Fault: rate. */
export function setRate(options: { rate: number; name?: string }): { before: number; rate: number };

/** Changes protection switches of the running replay; returns those in force. Fault: protection per key. */
export function protections(options: Protections & { name?: string }): Protections;

/** Steering state of the running replay. */
export interface Mix {
  writeFraction: number;
  multiFraction: number;
  lookupFraction: number;
  tenantWriteFraction: number;
  requestFraction: number;
}

/**
 * The running replay's steering state and its counts so far (as of the last
 * 100 ms interval): counters by metric name, errors by class and by op.
 */
export function status(): {
  running: boolean;
  rate?: number;
  processes?: number;
  /** Database queries the fleet has in flight now, and how many its pools hold (processes x poolSize). */
  dbInflight?: number;
  dbSlots?: number;
  /** Fetches answered so far (served or failed) and the sum of their latencies: a window's mean is the difference of two readings. */
  fetchesAnswered?: number;
  fetchLatencySumMs?: number;
  protections?: Protections;
  mix?: Mix;
  counters?: { [metric: string]: number };
  errors?: { [cls: string]: number };
  opErrors?: { [op: string]: number };
};

/**
 * Changes the operation mix of the running replay (keys not given keep
 * their value), as a feature flag turning a query off does. Recorded as
 * fault "mix" on target "fleet": inject while it differs from the replay's
 * options, remove when it is back.
 */
export function setMix(options: Partial<Mix> & { name?: string }): Mix;

/** Cache keys of the `count` (default hotSet) most popular records, for the given key options. */
export function hotSetKeys(options?: Partial<ReplayOptions> & { count?: number }): string[];
