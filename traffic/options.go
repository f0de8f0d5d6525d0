package traffic

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/envvar"
	"github.com/firedrill-dev/firedrill/internal/opts"
	"github.com/firedrill-dev/firedrill/traffic/format"
)

// MaxFillPasses bounds a fill's work (FillWork) to this many passes over
// the records table: past it a drill's fill costs more than any database
// it would be run against can serve at a useful rate.
const MaxFillPasses = 64

// Config is the full replay configuration. Build it with NewConfig and
// options, or with ConfigFromMap from a JS-style option map.
type Config struct {
	// CacheAddrs are the memcached servers traffic goes to (default: env
	// FIREDRILL_MEMCACHED, comma-separated; each through its Toxiproxy proxy).
	CacheAddrs []string `opt:"memcached,comma"`
	// AdminCacheAddrs reach the same servers without the proxy, in the same
	// order, for steering actions (default: env FIREDRILL_MEMCACHED_DIRECT).
	AdminCacheAddrs []string `opt:"memcachedDirect,comma"`
	// DSN is the go-sql-driver DSN traffic uses (default: env FIREDRILL_MYSQL_DSN).
	DSN string `opt:"dsn"`
	// AdminDSN reaches the same database for steering actions (refilling
	// the hot set) without the proxy and past max_connections (default:
	// env FIREDRILL_MYSQL_ADMIN_DSN; DSN when empty).
	AdminDSN string `opt:"adminDsn"`
	// Table holds the records (default "cache_records").
	Table string `opt:"table"`
	// Rate is operations per second (default 1000). An operation is a fetch,
	// a fetch_multi, a write, a lookup or a request.
	Rate float64 `opt:"rate"`
	// Duration bounds the replay (default 30 s, or the stages' total when
	// Stages are given and Duration is not).
	Duration time.Duration `opt:"duration"`
	// Stages ramp the rate linearly, as k6's ramping-arrival-rate: from
	// Rate (the start rate) to each stage's Target over its Duration, then
	// holding the last target (default none: Rate throughout). setRate()
	// ends the ramp and holds the rate it sets.
	Stages []Stage `opt:"stages"`
	// Arrivals is "uniform" (default) or "poisson" spacing of operations.
	Arrivals string `opt:"arrivals" enum:"uniform,poisson"`
	// Rows is the number of database rows (default 1,000,000).
	Rows uint64 `opt:"rows"`
	// Keys is the modelled keyspace (default Rows); key id k reads row
	// k mod Rows + 1, so a 5e9-record cache can sit over a small table.
	Keys uint64 `opt:"keys"`
	// Theta is the Zipf exponent in (0,1) (default 0.99).
	Theta float64 `opt:"theta"`
	// HotSet is the number of most popular keys expireHotSet acts on
	// (default 100).
	HotSet int `opt:"hotSet"`
	// HotSetReadOnly keeps writes off the HotSet most popular records
	// (default false: writes pick records as reads do, Zipf). Read on
	// every request and rarely edited, as a workspace's settings are,
	// such records then miss only when the drill expires them, not at
	// every write that lands on them.
	HotSetReadOnly bool `opt:"hotSetReadOnly"`
	// Warm is how many of the most popular keys are filled before traffic
	// starts, all at one instant with one TTL (default HotSet). The entries
	// then expire together after TTL unless TTLJitter is on: the incident's
	// natural trigger.
	Warm int `opt:"warm"`
	// TTL is the entry lifetime (default 60 s).
	TTL time.Duration `opt:"ttl"`
	// WarmTTL is the lifetime of the entries Warm fills (default TTL): a
	// short one makes them expire once, together, while every refill,
	// theirs included, lives TTL, so the replay's steady state stays the
	// cache's own.
	WarmTTL time.Duration `opt:"warmTtl"`
	// Processes is the fleet size P (default 4).
	Processes int `opt:"processes"`
	// PoolSize is each process's database pool size S (default 10).
	PoolSize int `opt:"poolSize"`
	// PoolIdle closes a pool's connections after this long unused (default
	// 0: kept open). Rails reaps connections idle 300 s; a drill that
	// compresses hours into seconds sets a few seconds, so the connections
	// open follow the load, and a fleet whose pools together exceed
	// max_connections meets the cap in a burst, not after every process
	// has once had two queries at a time.
	PoolIdle time.Duration `opt:"poolIdle"`
	// PoolIdleConns is how many of a pool's connections stay open unused
	// (default 0: all PoolSize). 1 closes a process's second connection as
	// soon as its query ends, as a pool with one idle connection does: the
	// connections open are then one per process plus the queries running
	// beside it, so a fleet whose pools exceed max_connections meets the
	// cap by queueing, not by two queries that once overlapped in most of
	// its processes within a PoolIdle.
	PoolIdleConns int `opt:"poolIdleConns"`
	// MaxInflight caps concurrently running operations over the fleet
	// (default 1024). When all are busy new operations start late and are
	// counted in cache_late; none is dropped while the replay runs.
	MaxInflight int `opt:"maxInflight"`
	// Mix is the share of each operation kind (all 0 by default: single
	// fetches only); SetMix changes it while the replay runs.
	Mix `opt:",inline"`
	// MultiSize is the number of keys per fetch_multi (default 10).
	MultiSize int `opt:"multiSize"`
	// TenantPrefix, Tenants and TenantRows name the tenant schemas tenant
	// writes go to (defaults "firedrill_tenant_", 10, 1000); they must
	// match database.createTenants.
	TenantPrefix string `opt:"tenantPrefix"`
	Tenants      int    `opt:"tenants"`
	TenantRows   int    `opt:"tenantRows"`
	// Format is the fleet's initial cache format (default legacy).
	Format format.Version `opt:"format"`
	// FlipFraction is the share of processes already running the other
	// (current) format at start (default 0).
	FlipFraction float64 `opt:"flipFraction"`
	// Seed makes key sequences reproducible (default env FIREDRILL_SEED or 1).
	Seed uint64 `opt:"seed"`
	// Stream tells apart the arrival sequences of engines that share a
	// Seed: the generators of one run each replay their own share of the
	// fleet's traffic, not the same keys at the same instants. 0 (one
	// generator, or the first) keeps the sequence the seed has always
	// given. Not a script option: the cache extension sets it from k6's
	// execution segment.
	Stream uint64
	// LateAfter is how far behind schedule an operation may start before it
	// counts as late (default 10 ms).
	LateAfter time.Duration `opt:"lateAfter"`
	// Deadline is the caller's request timeout: an operation answered
	// more than Deadline after it came due is not served but failed, class
	// "deadline", because its caller has given up on it (default 2 s; 0:
	// no deadline).
	Deadline time.Duration `opt:"deadline"`
	// CacheTimeout bounds each memcached round trip (default 500 ms).
	CacheTimeout time.Duration `opt:"cacheTimeout"`
	// DBTimeout bounds each database query (default 1 s).
	DBTimeout time.Duration `opt:"dbTimeout"`
	// CacheConnectTimeout bounds dialling a memcached server (default 250 ms).
	CacheConnectTimeout time.Duration `opt:"cacheConnectTimeout"`
	// CacheConns caps connections per memcached server (default 64); a
	// tier server takes up to max(CacheConns, MaxInflight), one per request
	// in flight.
	CacheConns int `opt:"cacheConns"`
	// TierAddrs are the servers of a second cache tier that requests call
	// (default: env FIREDRILL_TIER, comma-separated, each through its
	// Toxiproxy proxy; none: no tier, and requestFraction must be 0).
	TierAddrs []string `opt:"tier,comma"`
	// RequestCalls is the calls to the tier one request makes, one after
	// another, as a page that reads a dozen fragments does (default 15).
	RequestCalls int `opt:"requestCalls"`
	// TierTimeout bounds each round trip to the tier (default 2 s).
	TierTimeout time.Duration `opt:"tierTimeout"`
	// TierConnectTimeout bounds dialling a tier server (default 2 s): what
	// every call waits when the tier drops SYNs (incident 004).
	TierConnectTimeout time.Duration `opt:"tierConnectTimeout"`
	// CacheMux sends gets and sets over one multiplexed meta-protocol
	// connection per server (memcache.WithMux): about twice the gets per
	// CPU-second of the per-connection pool. A request that times out fails
	// alone, as on the pool, and its connection is kept; a connection that
	// answers nothing for max(2 x CacheTimeout, 1 s) is closed and redialled.
	// Other commands (add, delete, multi-gets, leases) use the pool.
	// Default true; false sends everything through the pool.
	CacheMux bool `opt:"cacheMux"`
	// Namespace, CacheVersion, Model and SchemaHash build IdentityCache keys
	// "<Namespace>IDC:<CacheVersion>:blob:<Model>:<SchemaHash>:<id>"
	// (defaults "", 8, "Record", a hash of the table's columns).
	Namespace    string `opt:"namespace"`
	CacheVersion int    `opt:"cacheVersion"`
	Model        string `opt:"model"`
	SchemaHash   string `opt:"schemaHash"`
	// WarmSpread starts the Warm entries in the steady state of a cache
	// refilled on the first read after each expiry, where entries expire
	// one by one, not in one wave (default false: every entry with
	// WarmTTL). With TTLs no protection shapes, each entry's remaining TTL
	// is uniform in [1s, WarmTTL]; with shaped ones (ttlJitter) it is the
	// residual of a length-biased life, and in a replay an entry is left
	// out with the chance that it would be expired and waiting for its
	// next read at the replay's start rate (the rarely read keys of a
	// Zipf).
	WarmSpread bool `opt:"warmSpread"`
	// WarmAbsent leaves this share of the Warm entries out, drawn at
	// random (default 0): a cache in the steady state of invalidating
	// writes, where a written entry is gone until its key's next read.
	// With reads and writes drawn from one Zipf, every key is absent with
	// the same chance, w/(r+w) for write share w and read share r; when
	// writes stay off the hot set (HotSetReadOnly) it is kept whole and the
	// other keys, which take all the writes, are left out more often (odds
	// w/r over 1 - the hot set's share of reads). Without
	// it, the refills of rarely read keys catch up for minutes and pass
	// for a rise.
	WarmAbsent float64 `opt:"warmAbsent"`
	// FillWork makes each fill query read this many rows of the records
	// table besides its own (a SUM over the first FillWork ids): an
	// expensive miss path whose cost is real work on the database's CPU,
	// so under the container's CPU quota its latency grows with the
	// queries running beside it, and a query whose client gave up still
	// burns its share. More than Rows reads the table in several passes,
	// at most MaxFillPasses (default 0). Seeding and warming skip it;
	// Calibrate measures the capacity it leaves.
	FillWork int `opt:"fillWork"`
	// QueryDelay makes each fill query wait this long on the database
	// (MySQL SLEEP per row read) without costing it anything: for tests of
	// the engine; drills use FillWork, real work (default 0).
	QueryDelay time.Duration `opt:"queryDelay"`
	// Retries is how many times the app's retry layer retries a failed
	// read of a fill (retry.go), as an ORM's does; the protection
	// retryBudget adds a backoff, jitter and a budget (default 0: none).
	Retries int `opt:"retries"`
	// Interval is the metric push interval (default 100 ms, the minimum).
	Interval time.Duration `opt:"interval"`
	// HDROut appends per-second HDR histograms as NDJSON (default: env
	// FIREDRILL_HDR_OUT; empty is off).
	HDROut string `opt:"hdrOut"`
	// Protections are the registered protections with their options; all
	// off by default (protection.go, protect_*.go).
	Protections Protections
	// ProtectionOptions is the protections object as a script gives it;
	// ApplyMap applies it to Protections and clears it.
	ProtectionOptions map[string]any `opt:"protections"`
}

// Stage is one leg of a ramp: reach Target operations per second over
// Duration.
type Stage struct {
	Duration time.Duration `opt:"duration,required"`
	Target   float64       `opt:"target,required"`
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
	WriteFraction float64 `opt:"writeFraction"`
	// MultiFraction is fetch_multi (MultiSize keys, one multi-get).
	MultiFraction float64 `opt:"multiFraction"`
	// LookupFraction queries the database by the indexed ref column,
	// uncached: the frequent query a plan regression turns into a full scan.
	LookupFraction float64 `opt:"lookupFraction"`
	// TenantWriteFraction updates a row of a tenant's table
	// (TenantPrefix<i>.items, as database.createTenants makes them).
	TenantWriteFraction float64 `opt:"tenantWriteFraction"`
	// RequestFraction is a request: RequestCalls calls to the cache tier
	// in sequence and no database.
	RequestFraction float64 `opt:"requestFraction"`
}

// sum is the shares together; single fetches are the rest.
func (m Mix) sum() float64 {
	return m.WriteFraction + m.MultiFraction + m.LookupFraction + m.TenantWriteFraction + m.RequestFraction
}

// kinds are the operation kinds the mix has, as protections name them.
func (m Mix) kinds() []string {
	var out []string
	if m.sum() < 1 {
		out = append(out, KindFetch)
	}
	if m.MultiFraction > 0 {
		out = append(out, KindMulti)
	}
	if m.WriteFraction+m.TenantWriteFraction > 0 {
		out = append(out, KindWrite)
	}
	if m.LookupFraction > 0 {
		out = append(out, KindLookup)
	}
	if m.RequestFraction > 0 {
		out = append(out, KindRequest)
	}
	return out
}

// share names the option that gives the mix operations of kind.
func (m Mix) share(kind string) string {
	switch kind {
	case KindMulti:
		return fmt.Sprintf("multiFraction %v", m.MultiFraction)
	case KindWrite:
		return fmt.Sprintf("writeFraction %v, tenantWriteFraction %v", m.WriteFraction, m.TenantWriteFraction)
	case KindLookup:
		return fmt.Sprintf("lookupFraction %v", m.LookupFraction)
	case KindRequest:
		return fmt.Sprintf("requestFraction %v", m.RequestFraction)
	}
	return "single fetches, the rest of the mix"
}

func (m Mix) validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"writeFraction", m.WriteFraction}, {"multiFraction", m.MultiFraction}, {"lookupFraction", m.LookupFraction},
		{"tenantWriteFraction", m.TenantWriteFraction}, {"requestFraction", m.RequestFraction}} {
		if !(f.v >= 0 && f.v <= 1) {
			return fmt.Errorf("option %s: %v must be in [0, 1]", f.name, f.v)
		}
	}
	if sum := m.sum(); sum > 1 {
		return fmt.Errorf("options writeFraction+multiFraction+lookupFraction+tenantWriteFraction+requestFraction: together %v, must be <= 1", sum)
	}
	return nil
}

// needsTier refuses requests in m when there are no tier servers to call.
func (m Mix) needsTier(tier []string) error {
	if m.RequestFraction > 0 && len(tier) == 0 {
		return fmt.Errorf("option tier: requestFraction %v needs the tier's servers (%s: a drill asks for them with \"@tier N\" in its header)",
			m.RequestFraction, envvar.Tier)
	}
	return nil
}

// Option changes a Config.
type Option func(*Config)

// NewConfig returns the defaults, with endpoints and seed from the
// process's environment, changed by opts.
func NewConfig(opts ...Option) Config { return NewConfigFrom(envvar.OS, opts...) }

// NewConfigFrom is NewConfig reading the harness's variables through env
// (a k6 extension passes k6's own lookup, which sees `k6 run -e`).
func NewConfigFrom(env envvar.Lookup, opts ...Option) Config {
	c := Config{
		CacheAddrs:          splitList(env.Get(envvar.Memcached)),
		AdminCacheAddrs:     splitList(env.Get(envvar.MemcachedDirect)),
		DSN:                 env.Get(envvar.MySQLDSN),
		AdminDSN:            env.Get(envvar.MySQLAdminDSN),
		Table:               "cache_records",
		Rate:                1000,
		Duration:            30 * time.Second,
		Arrivals:            "uniform",
		Rows:                1_000_000,
		Theta:               0.99,
		HotSet:              100,
		Warm:                -1,
		TTL:                 60 * time.Second,
		Processes:           4,
		PoolSize:            10,
		MaxInflight:         1024,
		MultiSize:           10,
		Format:              format.Legacy,
		Seed:                1,
		LateAfter:           10 * time.Millisecond,
		Deadline:            2 * time.Second,
		CacheTimeout:        500 * time.Millisecond,
		DBTimeout:           time.Second,
		CacheConns:          64,
		TierAddrs:           splitList(env.Get(envvar.Tier)),
		RequestCalls:        15,
		TierTimeout:         2 * time.Second,
		TierConnectTimeout:  2 * time.Second,
		CacheMux:            true,
		TenantPrefix:        "firedrill_tenant_",
		Tenants:             10,
		TenantRows:          1000,
		CacheConnectTimeout: 250 * time.Millisecond,
		CacheVersion:        8,
		Model:               "Record",
		Interval:            100 * time.Millisecond,
		HDROut:              env.Get(envvar.HDROut),
		Protections:         NewProtections(),
	}
	if s, err := strconv.ParseUint(env.Get(envvar.Seed), 10, 64); err == nil {
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
	if c.WarmTTL == 0 {
		c.WarmTTL = c.TTL
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
	case !validIdent(c.Table):
		return fmt.Errorf("option table: %q is not a plain table name", c.Table)
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
	case c.HotSetReadOnly && uint64(c.HotSet) >= c.Keys:
		return fmt.Errorf("option hotSetReadOnly: hotSet %d leaves no record of %d to write; lower hotSet or drop hotSetReadOnly", c.HotSet, c.Keys)
	case c.Warm < 0 || uint64(c.Warm) > c.Keys:
		return fmt.Errorf("option warm: %d must be in [0, keys]", c.Warm)
	case c.TTL < time.Second:
		return fmt.Errorf("option ttl: %v must be >= 1s (memcached TTLs are whole seconds)", c.TTL)
	case c.WarmTTL < time.Second:
		return fmt.Errorf("option warmTtl: %v must be >= 1s (memcached TTLs are whole seconds)", c.WarmTTL)
	case c.Processes < 1 || c.Processes > MaxProcesses:
		return fmt.Errorf("option processes: %d must be in [1, %d]", c.Processes, MaxProcesses)
	case c.PoolSize < 1:
		return fmt.Errorf("option poolSize: %d must be >= 1", c.PoolSize)
	case !(c.WarmAbsent >= 0 && c.WarmAbsent < 1):
		return fmt.Errorf("option warmAbsent: %v must be in [0, 1)", c.WarmAbsent)
	case c.PoolIdleConns < 0 || c.PoolIdleConns > c.PoolSize:
		return fmt.Errorf("option poolIdleConns: %d must be in [0, poolSize %d] (0 keeps them all)", c.PoolIdleConns, c.PoolSize)
	case c.PoolIdle < 0:
		return fmt.Errorf("option poolIdle: %v must be >= 0 (0 keeps idle connections open)", c.PoolIdle)
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
	case c.Deadline < 0:
		return fmt.Errorf("option deadline: %v must be >= 0 (0: no deadline)", c.Deadline)
	case c.CacheTimeout <= 0:
		return fmt.Errorf("option cacheTimeout: must be > 0")
	case c.DBTimeout <= 0:
		return fmt.Errorf("option dbTimeout: must be > 0")
	case c.CacheConns < 1:
		return fmt.Errorf("option cacheConns: must be >= 1")
	case c.CacheConnectTimeout <= 0:
		return fmt.Errorf("option cacheConnectTimeout: must be > 0")
	case c.RequestCalls < 1 || c.RequestCalls > 1000:
		return fmt.Errorf("option requestCalls: %d must be in [1, 1000]", c.RequestCalls)
	case c.TierTimeout <= 0:
		return fmt.Errorf("option tierTimeout: %v must be > 0", c.TierTimeout)
	case c.TierConnectTimeout <= 0:
		return fmt.Errorf("option tierConnectTimeout: %v must be > 0", c.TierConnectTimeout)
	case c.QueryDelay < 0 || c.QueryDelay > 10*time.Second:
		return fmt.Errorf("option queryDelay: %v must be in [0, 10s]", c.QueryDelay)
	case c.FillWork < 0 || uint64(c.FillWork) > MaxFillPasses*c.Rows:
		return fmt.Errorf("option fillWork: %d must be in [0, %d x rows %d]", c.FillWork, MaxFillPasses, c.Rows)
	case c.Interval < 100*time.Millisecond:
		return fmt.Errorf("option interval: %v must be >= 100ms", c.Interval)
	}
	if err := c.Mix.validate(); err != nil {
		return err
	}
	if err := c.Mix.needsTier(c.TierAddrs); err != nil {
		return err
	}
	if c.Format != format.Legacy && c.Format != format.Current {
		return fmt.Errorf("option format: unknown format %d", c.Format)
	}
	if c.Retries < 0 || c.Retries > 100 {
		return fmt.Errorf("option retries: %d must be in [0, 100] (0 is off)", c.Retries)
	}
	if c.Protections.set == nil {
		c.Protections = NewProtections()
	}
	if err := c.Protections.validate(); err != nil {
		return err
	}
	return c.Protections.checkKinds(c.Mix)
}

// ConfigFromMap builds a Config from a JS-style option map (as k6 hands an
// object to Go): defaults and environment first, then each key. An unknown
// key or a value of the wrong type or range is an error naming the option.
// Durations are strings ("30s") or numbers of milliseconds, as in k6.
func ConfigFromMap(m map[string]any) (Config, error) { return ConfigFromMapEnv(envvar.OS, m) }

// ConfigFromMapEnv is ConfigFromMap with the harness's variables read
// through env.
func ConfigFromMapEnv(env envvar.Lookup, m map[string]any) (Config, error) {
	c := NewConfigFrom(env)
	if err := ApplyMap(&c, m); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// ApplyMap applies option map m to c without validating the result.
// Without an explicit duration, stages last their total. The protections
// object goes to the protections' registry, which knows their options.
func ApplyMap(c *Config, m map[string]any) error {
	if err := opts.Decode(m, c); err != nil {
		return err
	}
	if _, given := m["duration"]; !given && len(c.Stages) > 0 {
		c.Duration = StagesTotal(c.Stages)
	}
	pm := c.ProtectionOptions
	if pm == nil {
		return nil
	}
	c.ProtectionOptions = nil
	if c.Protections.set == nil {
		c.Protections = NewProtections()
	}
	return c.Protections.Apply(pm)
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
