package traffic

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/format"
)

// Protections are the switches a drill proves. Each is off by default, so a
// drill reproduces the incident first and then turns them on one by one.
type Protections struct {
	// Coalesce merges concurrent fills of one key inside one process
	// (singleflight), as a per-process request coalescer does. Default off.
	Coalesce bool
	// FillLock is IdentityCache's fill lock: one filler per key takes a lock
	// in memcached, others wait FillLockWait and re-read up to FillLockTries
	// times, then fall back to the database. Default off.
	FillLock bool
	// FillLockWait is the wait between re-reads (default 50 ms).
	FillLockWait time.Duration
	// FillLockTries is how many re-reads a loser makes (default 3).
	FillLockTries int
	// Leases uses memcached's meta protocol (mg N): on a miss exactly one
	// client wins the lease and fills; others wait LeaseWait and retry up to
	// LeaseTries times, then fall back to the database. Default off.
	Leases bool
	// LeaseTTL is the placeholder lifetime (default 3 s).
	LeaseTTL time.Duration
	// LeaseWait is the wait between retries of a lease loser (default 20 ms).
	LeaseWait time.Duration
	// LeaseTries is how many retries a loser makes (default 5).
	LeaseTries int
	// StaleWhileRevalidate keeps entries this long past their logical
	// expiry and serves them stale while one refresh per key and process runs
	// in the background. 0 (default) is off.
	StaleWhileRevalidate time.Duration
	// TTLJitter shortens each TTL by a uniform random fraction in
	// [0, TTLJitter), so entries filled together do not expire together.
	// 0 (default) is off, as IdentityCache's store-wide TTL.
	TTLJitter float64
	// XFetch is probabilistic early refresh (Vattani et al., VLDB 2015): a
	// reader refreshes before expiry with probability growing as expiry
	// nears, scaled by the last fill time and XFetchBeta. Default off.
	XFetch bool
	// XFetchBeta scales XFetch's eagerness (default 1).
	XFetchBeta float64
	// DBLimit caps concurrent database queries per process; a query over the
	// cap fails fast with error class "shed" instead of queueing for the
	// pool. 0 (default) is off.
	DBLimit int
	// CompatRead lets readers decode both cache formats (dual read), so a
	// format flip does not turn foreign entries into misses. Default off.
	CompatRead bool
}

// Config is the full replay configuration. Build it with NewConfig and
// options, or with ConfigFromMap from a JS-style option map.
type Config struct {
	// CacheAddrs are the memcached servers traffic goes to (default: env
	// FIREDRILL_MEMCACHED, comma-separated; each through its Toxiproxy proxy).
	CacheAddrs []string
	// AdminCacheAddrs reach the same servers without the proxy, in the same
	// order, for steering actions (default: env FIREDRILL_MEMCACHED_DIRECT).
	AdminCacheAddrs []string
	// DSN is the go-sql-driver DSN traffic uses (default: env FIREDRILL_MYSQL_DSN).
	DSN string
	// Table holds the records (default "cache_records").
	Table string
	// Rate is operations per second (default 1000). An operation is a fetch,
	// a fetch_multi or a write.
	Rate float64
	// Duration bounds the replay (default 30 s, or the stages' total when
	// Stages are given and Duration is not).
	Duration time.Duration
	// Stages ramp the rate linearly, as k6's ramping-arrival-rate: from
	// Rate (the start rate) to each stage's Target over its Duration, then
	// holding the last target (default none: Rate throughout). setRate()
	// ends the ramp and holds the rate it sets.
	Stages []Stage
	// Arrivals is "uniform" (default) or "poisson" spacing of operations.
	Arrivals string
	// Rows is the number of database rows (default 1,000,000).
	Rows uint64
	// Keys is the modelled keyspace (default Rows); key id k reads row
	// k mod Rows + 1, so a 5e9-record cache can sit over a small table.
	Keys uint64
	// Theta is the Zipf exponent in (0,1) (default 0.99).
	Theta float64
	// HotSet is the number of most popular keys expireHotSet acts on
	// (default 100).
	HotSet int
	// Warm is how many of the most popular keys are filled before traffic
	// starts, all at one instant with one TTL (default HotSet). The entries
	// then expire together after TTL unless TTLJitter is on: the incident's
	// natural trigger.
	Warm int
	// TTL is the entry lifetime (default 60 s).
	TTL time.Duration
	// Processes is the fleet size P (default 4).
	Processes int
	// PoolSize is each process's database pool size S (default 10).
	PoolSize int
	// MaxInflight caps concurrently running operations over the fleet
	// (default 1024). When all are busy new operations start late and are
	// counted in cache_late; none is dropped while the replay runs.
	MaxInflight int
	// Mix is the share of each operation kind (all 0 by default: single
	// fetches only); SetMix changes it while the replay runs.
	Mix
	// MultiSize is the number of keys per fetch_multi (default 10).
	MultiSize int
	// TenantPrefix, Tenants and TenantRows name the tenant schemas tenant
	// writes go to (defaults "firedrill_tenant_", 10, 1000); they must
	// match database.createTenants.
	TenantPrefix string
	Tenants      int
	TenantRows   int
	// Format is the fleet's initial cache format (default legacy).
	Format format.Version
	// FlipFraction is the share of processes already running the other
	// (current) format at start (default 0).
	FlipFraction float64
	// Seed makes key sequences reproducible (default env FIREDRILL_SEED or 1).
	Seed uint64
	// LateAfter is how far behind schedule an operation may start before it
	// counts as late (default 10 ms).
	LateAfter time.Duration
	// CacheTimeout bounds each memcached round trip (default 500 ms).
	CacheTimeout time.Duration
	// DBTimeout bounds each database query (default 1 s).
	DBTimeout time.Duration
	// CacheConnectTimeout bounds dialling a memcached server (default 250 ms).
	CacheConnectTimeout time.Duration
	// CacheBreaker is a circuit breaker per memcached server: after this
	// many consecutive timeouts or connection failures of one server, calls
	// to it fail fast (error class breaker_open; a fetch then reads the
	// database) for CacheBreakerCooldown, after which one trial call is let
	// through. 0 (default) is off.
	CacheBreaker int
	// CacheBreakerCooldown is how long an open breaker fails fast before a
	// trial call (default 1 s).
	CacheBreakerCooldown time.Duration
	// CacheConns caps connections per memcached server (default 64).
	CacheConns int
	// CacheMux sends gets and sets over one multiplexed meta-protocol
	// connection per server (memcache.WithMux): about twice the gets per
	// CPU-second of the per-connection pool. A request that times out fails
	// alone, as on the pool, and its connection is kept; a connection that
	// answers nothing for max(2 x CacheTimeout, 1 s) is closed and redialled.
	// Other commands (add, delete, multi-gets, leases) use the pool.
	// Default true; false sends everything through the pool.
	CacheMux bool
	// Namespace, CacheVersion, Model and SchemaHash build IdentityCache keys
	// "<Namespace>IDC:<CacheVersion>:blob:<Model>:<SchemaHash>:<id>"
	// (defaults "", 8, "Record", a hash of the table's columns).
	Namespace    string
	CacheVersion int
	Model        string
	SchemaHash   string
	// QueryDelay makes each fill query cost this much database time
	// (MySQL SLEEP per row read), to model an expensive miss path as the
	// metastability studies do (default 0). Seeding and warming skip it.
	QueryDelay time.Duration
	// QueryContention adds this much database time to each fill query per
	// query running on the server when it starts (SLEEP of QueryContention
	// x the processlist's running queries): a database whose throughput is
	// fixed, so latency grows with concurrency, as CPU or latch contention
	// makes it, without burning the harness's CPU. Queries whose client
	// gave up still run and count (default 0: off).
	QueryContention time.Duration
	// Retry is the app's retry layer around fill reads (retry.go): options
	// retries, retryBackoff, retryJitter, retryBudget, retryBudgetWindow.
	// Off by default.
	Retry RetryPolicy
	// Interval is the metric push interval (default 100 ms, the minimum).
	Interval time.Duration
	// HDROut appends per-second HDR histograms as NDJSON (default: env
	// FIREDRILL_HDR_OUT; empty is off).
	HDROut string
	// Protections are the switches; all off by default.
	Protections Protections
}

// Stage is one leg of a ramp: reach Target operations per second over
// Duration.
type Stage struct {
	Duration time.Duration
	Target   float64
}

// StagesTotal is the stages' summed duration.
func StagesTotal(st []Stage) time.Duration {
	var d time.Duration
	for _, s := range st {
		d += s.Duration
	}
	return d
}

// rateAt is the ramp's rate at elapsed time t.
func rateAt(start float64, st []Stage, t time.Duration) float64 {
	from := start
	for _, s := range st {
		if t < s.Duration {
			return from + (s.Target-from)*float64(t)/float64(s.Duration)
		}
		t -= s.Duration
		from = s.Target
	}
	return from
}

// Mix is the share of each operation kind; the rest are single fetches.
// The shares are each in [0, 1] and together at most 1.
type Mix struct {
	// WriteFraction updates a record and invalidates its entry.
	WriteFraction float64
	// MultiFraction is fetch_multi (MultiSize keys, one multi-get).
	MultiFraction float64
	// LookupFraction queries the database by the indexed ref column,
	// uncached: the frequent query a plan regression turns into a full scan.
	LookupFraction float64
	// TenantWriteFraction updates a row of a tenant's table
	// (TenantPrefix<i>.items, as database.createTenants makes them).
	TenantWriteFraction float64
}

func (m Mix) validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"writeFraction", m.WriteFraction}, {"multiFraction", m.MultiFraction}, {"lookupFraction", m.LookupFraction}, {"tenantWriteFraction", m.TenantWriteFraction}} {
		if !(f.v >= 0 && f.v <= 1) {
			return fmt.Errorf("option %s: %v must be in [0, 1]", f.name, f.v)
		}
	}
	if sum := m.WriteFraction + m.MultiFraction + m.LookupFraction + m.TenantWriteFraction; sum > 1 {
		return fmt.Errorf("options writeFraction+multiFraction+lookupFraction+tenantWriteFraction: together %v, must be <= 1", sum)
	}
	return nil
}

// Option changes a Config.
type Option func(*Config)

// NewConfig returns the defaults, with endpoints and seed from the
// environment, changed by opts.
func NewConfig(opts ...Option) Config {
	c := Config{
		CacheAddrs:           splitList(os.Getenv("FIREDRILL_MEMCACHED")),
		AdminCacheAddrs:      splitList(os.Getenv("FIREDRILL_MEMCACHED_DIRECT")),
		DSN:                  os.Getenv("FIREDRILL_MYSQL_DSN"),
		Table:                "cache_records",
		Rate:                 1000,
		Duration:             30 * time.Second,
		Arrivals:             "uniform",
		Rows:                 1_000_000,
		Theta:                0.99,
		HotSet:               100,
		Warm:                 -1,
		TTL:                  60 * time.Second,
		Processes:            4,
		PoolSize:             10,
		MaxInflight:          1024,
		MultiSize:            10,
		Format:               format.Legacy,
		Seed:                 1,
		LateAfter:            10 * time.Millisecond,
		CacheTimeout:         500 * time.Millisecond,
		DBTimeout:            time.Second,
		CacheConns:           64,
		CacheMux:             true,
		TenantPrefix:         "firedrill_tenant_",
		Tenants:              10,
		TenantRows:           1000,
		CacheConnectTimeout:  250 * time.Millisecond,
		CacheBreakerCooldown: time.Second,
		CacheVersion:         8,
		Model:                "Record",
		Interval:             100 * time.Millisecond,
		HDROut:               os.Getenv("FIREDRILL_HDR_OUT"),
		Retry:                RetryPolicy{BudgetWindow: 10 * time.Second},
		Protections: Protections{
			FillLockWait:  50 * time.Millisecond,
			FillLockTries: 3,
			LeaseTTL:      3 * time.Second,
			LeaseWait:     20 * time.Millisecond,
			LeaseTries:    5,
			XFetchBeta:    1,
		},
	}
	if s, err := strconv.ParseUint(os.Getenv("FIREDRILL_SEED"), 10, 64); err == nil {
		c.Seed = s
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithCacheAddrs sets the traffic memcached addresses.
func WithCacheAddrs(a ...string) Option { return func(c *Config) { c.CacheAddrs = a } }

// WithDSN sets the traffic database DSN.
func WithDSN(dsn string) Option { return func(c *Config) { c.DSN = dsn } }

// WithRate sets operations per second.
func WithRate(r float64) Option { return func(c *Config) { c.Rate = r } }

// WithStages sets a linear ramp of the rate from Rate through each stage.
func WithStages(st ...Stage) Option { return func(c *Config) { c.Stages = st } }

// WithDuration sets the replay duration.
func WithDuration(d time.Duration) Option { return func(c *Config) { c.Duration = d } }

// WithProtections sets the protection switches.
func WithProtections(p Protections) Option { return func(c *Config) { c.Protections = p } }

// WithSeed sets the seed.
func WithSeed(s uint64) Option { return func(c *Config) { c.Seed = s } }

// WithKeys sets the keyspace size and the database row count.
func WithKeys(keys, rows uint64) Option { return func(c *Config) { c.Keys, c.Rows = keys, rows } }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// finish fills derived defaults.
func (c *Config) finish() {
	if c.Keys == 0 {
		c.Keys = c.Rows
	}
	if c.Warm < 0 {
		c.Warm = c.HotSet
	}
	if c.SchemaHash == "" {
		c.SchemaHash = schemaHash(c.Table)
	}
}

// Validate reports the first bad value, naming its option.
func (c *Config) Validate() error {
	c.finish()
	for i, st := range c.Stages {
		if st.Duration <= 0 {
			return fmt.Errorf("option stages[%d].duration: %v must be > 0", i, st.Duration)
		}
		if !(st.Target >= 0) || math.IsInf(st.Target, 0) {
			return fmt.Errorf("option stages[%d].target: %v must be >= 0", i, st.Target)
		}
	}
	switch {
	case len(c.CacheAddrs) == 0:
		return fmt.Errorf("option memcached: no memcached addresses (set FIREDRILL_MEMCACHED)")
	case len(c.AdminCacheAddrs) != 0 && len(c.AdminCacheAddrs) != len(c.CacheAddrs):
		return fmt.Errorf("option memcachedDirect: %d addresses for %d servers", len(c.AdminCacheAddrs), len(c.CacheAddrs))
	case !(c.Rate >= 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("option rate: %v must be >= 0", c.Rate)
	case c.Duration <= 0:
		return fmt.Errorf("option duration: %v must be > 0", c.Duration)
	case len(c.Stages) > 1000:
		return fmt.Errorf("option stages: %d stages, at most 1000", len(c.Stages))
	case c.Arrivals != "uniform" && c.Arrivals != "poisson":
		return fmt.Errorf("option arrivals: %q must be uniform or poisson", c.Arrivals)
	case c.Rows == 0:
		return fmt.Errorf("option rows: must be > 0")
	case !(c.Theta > 0 && c.Theta < 1):
		return fmt.Errorf("option theta: %v must be in (0, 1)", c.Theta)
	case c.HotSet < 0 || uint64(c.HotSet) > c.Keys:
		return fmt.Errorf("option hotSet: %d must be in [0, keys]", c.HotSet)
	case c.Warm < 0 || uint64(c.Warm) > c.Keys:
		return fmt.Errorf("option warm: %d must be in [0, keys]", c.Warm)
	case c.TTL < time.Second:
		return fmt.Errorf("option ttl: %v must be >= 1s (memcached TTLs are whole seconds)", c.TTL)
	case c.Processes < 1 || c.Processes > MaxProcesses:
		return fmt.Errorf("option processes: %d must be in [1, %d]", c.Processes, MaxProcesses)
	case c.PoolSize < 1:
		return fmt.Errorf("option poolSize: %d must be >= 1", c.PoolSize)
	case c.MaxInflight < 1:
		return fmt.Errorf("option maxInflight: %d must be >= 1", c.MaxInflight)
	case c.MultiSize < 1 || c.MultiSize > 1000:
		return fmt.Errorf("option multiSize: %d must be in [1, 1000]", c.MultiSize)
	case !validIdent(c.TenantPrefix):
		return fmt.Errorf("option tenantPrefix: %q is not a plain name", c.TenantPrefix)
	case c.Tenants < 1 || c.Tenants > 10000:
		return fmt.Errorf("option tenants: %d must be in [1, 10000]", c.Tenants)
	case c.TenantRows < 1:
		return fmt.Errorf("option tenantRows: %d must be >= 1", c.TenantRows)
	case c.FlipFraction < 0 || c.FlipFraction > 1:
		return fmt.Errorf("option flipFraction: %v must be in [0, 1]", c.FlipFraction)
	case c.LateAfter <= 0:
		return fmt.Errorf("option lateAfter: must be > 0")
	case c.CacheTimeout <= 0:
		return fmt.Errorf("option cacheTimeout: must be > 0")
	case c.DBTimeout <= 0:
		return fmt.Errorf("option dbTimeout: must be > 0")
	case c.CacheConns < 1:
		return fmt.Errorf("option cacheConns: must be >= 1")
	case c.CacheConnectTimeout <= 0:
		return fmt.Errorf("option cacheConnectTimeout: must be > 0")
	case c.CacheBreaker < 0:
		return fmt.Errorf("option cacheBreaker: %d must be >= 0 (0 is off)", c.CacheBreaker)
	case c.CacheBreakerCooldown <= 0:
		return fmt.Errorf("option cacheBreakerCooldown: must be > 0")
	case c.QueryDelay < 0 || c.QueryDelay > 10*time.Second:
		return fmt.Errorf("option queryDelay: %v must be in [0, 10s]", c.QueryDelay)
	case c.QueryContention < 0 || c.QueryContention > time.Second:
		return fmt.Errorf("option queryContention: %v must be in [0, 1s]", c.QueryContention)
	case c.Interval < 100*time.Millisecond:
		return fmt.Errorf("option interval: %v must be >= 100ms", c.Interval)
	}
	if err := c.Mix.validate(); err != nil {
		return err
	}
	if c.Format != format.Legacy && c.Format != format.Current {
		return fmt.Errorf("option format: unknown format %d", c.Format)
	}
	if err := c.Retry.validate(); err != nil {
		return err
	}
	return c.Protections.validate()
}

func (p *Protections) validate() error {
	switch {
	case p.FillLockWait <= 0:
		return fmt.Errorf("option protections.fillLockWait: must be > 0")
	case p.FillLockTries < 0:
		return fmt.Errorf("option protections.fillLockTries: must be >= 0")
	case p.LeaseTTL < time.Second:
		return fmt.Errorf("option protections.leaseTTL: must be >= 1s")
	case p.LeaseWait <= 0:
		return fmt.Errorf("option protections.leaseWait: must be > 0")
	case p.LeaseTries < 0:
		return fmt.Errorf("option protections.leaseTries: must be >= 0")
	case p.StaleWhileRevalidate < 0:
		return fmt.Errorf("option protections.staleWhileRevalidate: must be >= 0")
	case p.TTLJitter < 0 || p.TTLJitter >= 1:
		return fmt.Errorf("option protections.ttlJitter: %v must be in [0, 1)", p.TTLJitter)
	case p.XFetchBeta <= 0:
		return fmt.Errorf("option protections.xfetchBeta: must be > 0")
	case p.DBLimit < 0:
		return fmt.Errorf("option protections.dbLimit: must be >= 0")
	}
	if p.FillLock && p.Leases {
		return fmt.Errorf("option protections: fillLock and leases are alternatives; turn on one")
	}
	return nil
}

// ConfigFromMap builds a Config from a JS-style option map (as k6 hands an
// object to Go): defaults and environment first, then each key. An unknown
// key or a value of the wrong type or range is an error naming the option.
// Durations are strings ("30s") or numbers of milliseconds, as in k6.
func ConfigFromMap(m map[string]any) (Config, error) {
	c := NewConfig()
	if err := ApplyMap(&c, m); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// ApplyMap applies option map m to c without validating the result.
func ApplyMap(c *Config, m map[string]any) error {
	durationSet := false
	defer func() {
		if !durationSet && len(c.Stages) > 0 {
			c.Duration = StagesTotal(c.Stages)
		}
	}()
	for _, k := range sortedKeys(m) {
		v := m[k]
		var err error
		switch k {
		case "memcached":
			c.CacheAddrs, err = asList(v)
		case "memcachedDirect":
			c.AdminCacheAddrs, err = asList(v)
		case "dsn":
			c.DSN, err = asString(v)
		case "table":
			c.Table, err = asString(v)
			if err == nil && !validIdent(c.Table) {
				err = fmt.Errorf("%q is not a plain table name", c.Table)
			}
		case "rate":
			c.Rate, err = asFloat(v)
		case "duration":
			c.Duration, err = asDuration(v)
			durationSet = true
		case "stages":
			c.Stages, err = asStages(v)
		case "arrivals":
			c.Arrivals, err = asString(v)
		case "rows":
			c.Rows, err = asUint(v)
		case "keys":
			c.Keys, err = asUint(v)
		case "theta":
			c.Theta, err = asFloat(v)
		case "hotSet":
			c.HotSet, err = asInt(v)
		case "warm":
			c.Warm, err = asInt(v)
		case "ttl":
			c.TTL, err = asDuration(v)
		case "processes":
			c.Processes, err = asInt(v)
		case "poolSize":
			c.PoolSize, err = asInt(v)
		case "maxInflight":
			c.MaxInflight, err = asInt(v)
		case "multiFraction":
			c.MultiFraction, err = asFloat(v)
		case "multiSize":
			c.MultiSize, err = asInt(v)
		case "writeFraction":
			c.WriteFraction, err = asFloat(v)
		case "tenantWriteFraction":
			c.TenantWriteFraction, err = asFloat(v)
		case "tenantPrefix":
			c.TenantPrefix, err = asString(v)
		case "tenants":
			c.Tenants, err = asInt(v)
		case "tenantRows":
			c.TenantRows, err = asInt(v)
		case "lookupFraction":
			c.LookupFraction, err = asFloat(v)
		case "format":
			var s string
			if s, err = asString(v); err == nil {
				c.Format, err = format.Parse(s)
			}
		case "flipFraction":
			c.FlipFraction, err = asFloat(v)
		case "seed":
			c.Seed, err = asUint(v)
		case "lateAfter":
			c.LateAfter, err = asDuration(v)
		case "cacheTimeout":
			c.CacheTimeout, err = asDuration(v)
		case "dbTimeout":
			c.DBTimeout, err = asDuration(v)
		case "cacheConns":
			c.CacheConns, err = asInt(v)
		case "cacheConnectTimeout":
			c.CacheConnectTimeout, err = asDuration(v)
		case "cacheBreaker":
			c.CacheBreaker, err = asInt(v)
		case "cacheBreakerCooldown":
			c.CacheBreakerCooldown, err = asDuration(v)
		case "cacheMux":
			c.CacheMux, err = asBool(v)
		case "namespace":
			c.Namespace, err = asString(v)
		case "cacheVersion":
			c.CacheVersion, err = asInt(v)
		case "model":
			c.Model, err = asString(v)
		case "schemaHash":
			c.SchemaHash, err = asString(v)
		case "interval":
			c.Interval, err = asDuration(v)
		case "queryDelay":
			c.QueryDelay, err = asDuration(v)
		case "queryContention":
			c.QueryContention, err = asDuration(v)
		case "retries":
			c.Retry.Retries, err = asInt(v)
		case "retryBackoff":
			c.Retry.Backoff, err = asDuration(v)
		case "retryJitter":
			c.Retry.Jitter, err = asJitter(v)
		case "retryBudget":
			c.Retry.Budget, err = asFloat(v)
		case "retryBudgetWindow":
			c.Retry.BudgetWindow, err = asDuration(v)
		case "hdrOut":
			c.HDROut, err = asString(v)
		case "protections":
			pm, ok := v.(map[string]any)
			if !ok {
				err = fmt.Errorf("must be an object, got %T", v)
				break
			}
			if err := ApplyProtections(&c.Protections, pm); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown option %q", k)
		}
		if err != nil {
			return fmt.Errorf("option %s: %w", k, err)
		}
	}
	return nil
}

// ApplyProtections applies a protections option map to p.
func ApplyProtections(p *Protections, m map[string]any) error {
	for _, k := range sortedKeys(m) {
		v := m[k]
		var err error
		switch k {
		case "coalesce":
			p.Coalesce, err = asBool(v)
		case "fillLock":
			p.FillLock, err = asBool(v)
		case "fillLockWait":
			p.FillLockWait, err = asDuration(v)
		case "fillLockTries":
			p.FillLockTries, err = asInt(v)
		case "leases":
			p.Leases, err = asBool(v)
		case "leaseTTL":
			p.LeaseTTL, err = asDuration(v)
		case "leaseWait":
			p.LeaseWait, err = asDuration(v)
		case "leaseTries":
			p.LeaseTries, err = asInt(v)
		case "staleWhileRevalidate":
			p.StaleWhileRevalidate, err = asDuration(v)
		case "ttlJitter":
			p.TTLJitter, err = asFloat(v)
		case "xfetch":
			p.XFetch, err = asBool(v)
		case "xfetchBeta":
			p.XFetchBeta, err = asFloat(v)
		case "dbLimit":
			p.DBLimit, err = asInt(v)
		case "compatRead":
			p.CompatRead, err = asBool(v)
		default:
			return fmt.Errorf("unknown option \"protections.%s\"", k)
		}
		if err != nil {
			return fmt.Errorf("option protections.%s: %w", k, err)
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func validIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func asString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("must be a string, got %T", v)
	}
	return s, nil
}

func asBool(v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("must be a boolean, got %T", v)
	}
	return b, nil
}

func asFloat(v any) (float64, error) {
	switch n := v.(type) {
	case int64:
		return float64(n), nil
	case int:
		return float64(n), nil
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return 0, fmt.Errorf("must be a finite number")
		}
		return n, nil
	}
	return 0, fmt.Errorf("must be a number, got %T", v)
}

func asInt(v any) (int, error) {
	f, err := asFloat(v)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("must be an integer, got %v", f)
	}
	return int(f), nil
}

func asUint(v any) (uint64, error) {
	f, err := asFloat(v)
	if err != nil {
		return 0, err
	}
	if f < 0 || f != math.Trunc(f) || f > 1<<53 {
		return 0, fmt.Errorf("must be a non-negative integer, got %v", f)
	}
	return uint64(f), nil
}

func asDuration(v any) (time.Duration, error) {
	if s, ok := v.(string); ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return d, nil
	}
	f, err := asFloat(v)
	if err != nil {
		return 0, fmt.Errorf("must be a duration string or milliseconds, got %T", v)
	}
	return time.Duration(f * float64(time.Millisecond)), nil
}

// asStages reads [{duration: "10s", target: 2000}, ...].
func asStages(v any) ([]Stage, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("must be a list of {duration, target} objects, got %T", v)
	}
	out := make([]Stage, 0, len(l))
	for i, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("stages[%d]: must be an object {duration, target}, got %T", i, e)
		}
		var st Stage
		for _, k := range sortedKeys(m) {
			var err error
			switch k {
			case "duration":
				st.Duration, err = asDuration(m[k])
			case "target":
				st.Target, err = asFloat(m[k])
			default:
				err = fmt.Errorf("unknown key (want duration and target)")
			}
			if err != nil {
				return nil, fmt.Errorf("stages[%d].%s: %w", i, k, err)
			}
		}
		if _, ok := m["duration"]; !ok {
			return nil, fmt.Errorf("stages[%d]: duration is missing", i)
		}
		if _, ok := m["target"]; !ok {
			return nil, fmt.Errorf("stages[%d]: target is missing", i)
		}
		out = append(out, st)
	}
	return out, nil
}

func asList(v any) ([]string, error) {
	switch l := v.(type) {
	case string:
		return splitList(l), nil
	case []any:
		out := make([]string, 0, len(l))
		for _, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("must be a list of strings, got an element of %T", e)
			}
			out = append(out, s)
		}
		return out, nil
	case []string:
		return l, nil
	}
	return nil, fmt.Errorf("must be a comma-separated string or a list, got %T", v)
}
