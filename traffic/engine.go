package traffic

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"golang.org/x/sync/singleflight"

	fdb "github.com/firedrill-dev/firedrill/faults/database"
	"github.com/firedrill-dev/firedrill/traffic/format"
	"github.com/firedrill-dev/firedrill/traffic/memcache"
	"github.com/firedrill-dev/firedrill/traffic/zipf"
)

// Engine replays one run of traffic. Build it with New, run it once with
// Run; steering methods may be called from any goroutine while it runs.
type Engine struct {
	cfg   Config
	kb    KeyBuilder
	zipf  *zipf.Sampler
	cache *memcache.Client
	admin *memcache.Client
	// tier is the second cache tier's client, which requests call (nil
	// without tier servers)
	tier  *memcache.Client
	stats *stats
	sink  Sink
	dsn   string
	flip  atomic.Uint64 // float64 bits: share of processes on the other format
	pace  atomic.Pointer[pacing]
	prot  atomic.Pointer[Protections]
	mix   atomic.Pointer[Mix]
	// built once, not per operation: the lookup and each tenant's update
	lookupQuery   string
	fillQuery     string // a fill's SELECT, its work clause included
	delay         string // delayClause, for the fills' multi-row SELECT
	tenantUpdates []string
	// tenantTally counts each tenant's writes for the integrity check
	tenantTally []tenantTally
	fleet       atomic.Pointer[[]*process]
	fleetM      sync.Mutex // serialises Scale
	bg          sync.WaitGroup
	bgSem       chan struct{}
	closed      []*process
	ran         atomic.Bool
	runCtx      context.Context
	started     chan struct{}
	startAt     time.Time
	// hot holds the hot set's ids: reads of them are counted apart
	// (db_hot_reads), and writes spare them when HotSetReadOnly is set
	hot map[uint64]bool
	// tierOff is the fleet's feature flag for the tier, turned off (true)
	// by the protection tierFlag: one flag for every process, as a flag
	// service's is
	tierOff atomic.Bool
}

// Started is closed when traffic starts (after warming); StartTime is then
// the schedule's origin.
func (e *Engine) Started() <-chan struct{} { return e.started }

// StartTime returns when traffic started (zero before Started is closed).
func (e *Engine) StartTime() time.Time {
	select {
	case <-e.started:
		return e.startAt
	default:
		return time.Time{}
	}
}

type process struct {
	idx      int
	db       *sql.DB
	busy     atomic.Int64 // queries running, for the DB limit
	group    singleflight.Group
	refresh  sync.Map
	retiring atomic.Bool
	// budget is the process's retry budget (nil: unlimited).
	budget *budgetWindow
}

// New validates cfg and connects nothing yet but the memcached clients
// (which dial lazily).
func New(cfg Config, sink Sink) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DSN == "" {
		return nil, errors.New("option dsn: no database DSN (set FIREDRILL_MYSQL_DSN)")
	}
	z, err := zipf.New(cfg.Keys, cfg.Theta)
	if err != nil {
		return nil, fmt.Errorf("option theta: %w", err)
	}
	copts := []memcache.Option{memcache.WithMaxConns(cfg.CacheConns), memcache.WithTimeout(cfg.CacheTimeout),
		memcache.WithDialTimeout(cfg.CacheConnectTimeout), memcache.WithMux(cfg.CacheMux)}
	copts = append(copts, cfg.Protections.clientOptions()...)
	mc, err := memcache.New(cfg.CacheAddrs, copts...)
	if err != nil {
		return nil, fmt.Errorf("option memcached: %w", err)
	}
	admin := mc
	if len(cfg.AdminCacheAddrs) > 0 {
		// Same ring names as traffic, so keys land on the same servers, but
		// dialled without the proxy.
		admin, err = memcache.New(cfg.CacheAddrs, memcache.WithDialAddrs(cfg.AdminCacheAddrs), memcache.WithMaxConns(16), memcache.WithTimeout(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("option memcachedDirect: %w", err)
		}
	}
	var tier *memcache.Client
	if len(cfg.TierAddrs) > 0 {
		// A connection per request in flight, never multiplexed: a request's
		// thread owns its client, as a Rails process's Dalli does, so every
		// call that meets a cut-off tier waits its own connect timeout (on a
		// shared dial, later callers would wait only what is left of it).
		topts := []memcache.Option{memcache.WithMaxConns(max(cfg.CacheConns, cfg.MaxInflight)), memcache.WithTimeout(cfg.TierTimeout),
			memcache.WithDialTimeout(cfg.TierConnectTimeout), memcache.WithMux(false)}
		topts = append(topts, cfg.Protections.clientOptionsFor(KindRequest)...)
		if tier, err = memcache.New(cfg.TierAddrs, topts...); err != nil {
			return nil, fmt.Errorf("option tier: %w", err)
		}
	}
	dsn, err := interpolatingDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("option dsn: %w", err)
	}
	if sink == nil {
		sink = SinkFunc(func([]Sample) {})
	}
	e := &Engine{
		cfg: cfg, kb: NewKeyBuilder(cfg.Namespace, cfg.CacheVersion, cfg.Model, cfg.SchemaHash),
		zipf: z, cache: mc, admin: admin, tier: tier, stats: newStats(len(cfg.CacheAddrs)), sink: sink, dsn: dsn,
		bgSem: make(chan struct{}, 64), started: make(chan struct{}),
	}
	e.flip.Store(math.Float64bits(cfg.FlipFraction))
	e.pace.Store(&pacing{p: newPacer(&e.cfg, e.rand(0x7061))})
	p := cfg.Protections.clone()
	e.prot.Store(&p)
	e.lookupQuery = "SELECT id, version FROM " + cfg.Table + " WHERE ref = ?"
	// built once: with its passes the work clause is a loop per fill
	e.delay = e.delayClause()
	e.fillQuery = "SELECT version, payload FROM " + cfg.Table + " WHERE id = ?" + e.delay
	e.tenantUpdates = make([]string, cfg.Tenants)
	e.tenantTally = make([]tenantTally, cfg.Tenants)
	for i := range e.tenantUpdates {
		e.tenantUpdates[i] = "UPDATE `" + fdb.TenantSchema(cfg.TenantPrefix, i) + "`." + fdb.TenantTable + " SET qty = qty + 1 WHERE id = ?"
	}
	// by id, not rank: ranks past the hot set can scramble onto its ids,
	// and those reads are of the same records and entries
	e.hot = make(map[uint64]bool, cfg.HotSet)
	for _, id := range HotSetIDs(cfg.HotSet, cfg.Keys) {
		e.hot[id] = true
	}
	mix := cfg.Mix
	e.mix.Store(&mix)
	return e, nil
}

// interpolatingDSN turns on client-side parameter interpolation so a
// SELECT by key is one round trip instead of prepare/execute/close.
func interpolatingDSN(dsn string) (string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	c.InterpolateParams = true
	return c.FormatDSN(), nil
}

// Config returns the engine's validated configuration.
func (e *Engine) Config() Config { return e.cfg }

// Keys returns the key builder.
func (e *Engine) Keys() KeyBuilder { return e.kb }

func (e *Engine) newProcess(i int) (*process, error) {
	db, err := sql.Open("mysql", e.dsn)
	if err != nil {
		return nil, fmt.Errorf("open db: %w", err)
	}
	db.SetMaxOpenConns(e.cfg.PoolSize)
	db.SetMaxIdleConns(cmp.Or(e.cfg.PoolIdleConns, e.cfg.PoolSize))
	db.SetConnMaxIdleTime(e.cfg.PoolIdle)
	p := &process{idx: i, db: db}
	for _, name := range e.prot.Load().on {
		if h, ok := e.prot.Load().set[name].(processHook); ok {
			h.newProcess(p, time.Now())
		}
	}
	return p, nil
}

// SetRate changes the arrival rate (operations per second) from now on,
// ending a ramp of Stages if one is running.
func (e *Engine) SetRate(r float64) error {
	if !(r >= 0) || math.IsInf(r, 0) {
		return fmt.Errorf("set rate: %v must be >= 0", r)
	}
	var p Pacer = ConstantPacer{Freq: r}
	if e.cfg.Arrivals == "poisson" {
		p = NewPoissonPacer(r, e.rand(0x7062))
	}
	e.pace.Store(&pacing{p: p, origin: time.Now()})
	return nil
}

// Rate returns the current arrival rate.
func (e *Engine) Rate() float64 {
	pc := e.pace.Load()
	if pc.origin.IsZero() {
		return pc.p.Rate(0)
	}
	return pc.p.Rate(time.Since(pc.origin))
}

// FlipFraction is the share of the fleet FlipFormat last moved to the
// other format.
func (e *Engine) FlipFraction() float64 { return math.Float64frombits(e.flip.Load()) }

// FlipFormat moves a share of the fleet (processes 0..round(f*P)-1) to the
// other cache format, as a rolling deploy does; 0 rolls back.
func (e *Engine) FlipFormat(f float64) error {
	if !(f >= 0 && f <= 1) {
		return fmt.Errorf("flip format: fraction %v must be in [0, 1]", f)
	}
	e.flip.Store(math.Float64bits(f))
	return nil
}

// SetProtections replaces the protections from the next operation on. Those
// that configure the memcached client (the breaker) are set when the
// replay starts and cannot change while it runs; per-process state (a
// retry budget's window) comes with processes started afterwards.
func (e *Engine) SetProtections(p Protections) error {
	p = p.clone()
	if err := p.validate(); err != nil {
		return err
	}
	if err := p.checkKinds(e.CurrentMix()); err != nil {
		return err
	}
	if err := e.prot.Load().sameClient(p); err != nil {
		return err
	}
	e.prot.Store(&p)
	return nil
}

// SetMix changes the operation mix from the next arrival on, as a feature
// flag turning a query off does.
func (e *Engine) SetMix(m Mix) error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("set mix: %w", err)
	}
	if err := e.prot.Load().checkKinds(m); err != nil {
		return fmt.Errorf("set mix: %w", err)
	}
	if err := m.needsTier(e.cfg.TierAddrs); err != nil {
		return fmt.Errorf("set mix: %w", err)
	}
	e.mix.Store(&m)
	return nil
}

// CurrentMix returns the operation mix.
func (e *Engine) CurrentMix() Mix { return *e.mix.Load() }

// Totals returns what the replay has counted so far (as of the last
// metric interval), so a script can steer on it while the replay runs.
func (e *Engine) Totals() Totals { return e.stats.snapshot() }

// Protections returns a copy of the current protections.
func (e *Engine) Protections() Protections { return e.prot.Load().clone() }

// Scale changes the fleet to n processes, each with its own pool, as an
// autoscaler does; removed processes finish their work and close.
func (e *Engine) Scale(n int) error {
	if n < 1 || n > MaxProcesses {
		return fmt.Errorf("scale: processes %d must be in [1, %d]", n, MaxProcesses)
	}
	e.fleetM.Lock()
	defer e.fleetM.Unlock()
	cur := e.fleet.Load()
	if cur == nil {
		return errors.New("scale: replay is not running")
	}
	old := *cur
	next := make([]*process, n)
	copy(next, old)
	for i := len(old); i < n; i++ {
		p, err := e.newProcess(i)
		if err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		next[i] = p
	}
	e.fleet.Store(&next)
	for i := n; i < len(old); i++ {
		old[i].retiring.Store(true)
		e.closed = append(e.closed, old[i])
	}
	return nil
}

// DBInflight is the database queries the fleet has in flight now, and
// DBSlots how many its pools can hold at once (processes x poolSize):
// their ratio is the fleet's utilization, what an autoscaler that counts
// busy workers sees.
func (e *Engine) DBInflight() int64 { return e.stats.dbInflight.Load() }

// FetchLatency is the fetches answered so far (served or failed) and the
// sum of their latencies, from their due times: an autoscaler's mean
// latency over a window is the difference of two readings.
func (e *Engine) FetchLatency() (n int64, sum time.Duration) {
	return e.stats.fetchesDone.Load(), time.Duration(e.stats.fetchSumUs.Load()) * time.Microsecond
}

// DBSlots is processes x poolSize; see DBInflight.
func (e *Engine) DBSlots() int { return e.Processes() * e.cfg.PoolSize }

// Processes returns the fleet size.
func (e *Engine) Processes() int {
	if f := e.fleet.Load(); f != nil {
		return len(*f)
	}
	return e.cfg.Processes
}

func (e *Engine) readerFor(p *process, nprocs int) format.Reader {
	f := math.Float64frombits(e.flip.Load())
	v := e.cfg.Format
	if p.idx < int(math.Round(f*float64(nprocs))) {
		v = other(v)
	}
	return e.reader(v)
}

// reader decodes entries of format v, as the protections' read hooks say
// (a dual read).
func (e *Engine) reader(v format.Version) format.Reader {
	r := format.Reader{Version: v}
	for _, h := range e.prot.Load().read {
		r = h.reader(r)
	}
	return r
}

func other(v format.Version) format.Version {
	if v == format.Legacy {
		return format.Current
	}
	return format.Legacy
}

// rand is a generator of the engine's traffic for the purpose salt, from
// the seed and the stream: one stream's sequences are those the seed gave
// before streams existed, and every stream's are its own.
func (e *Engine) rand(salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(e.cfg.Seed, salt^e.cfg.Stream*0x9e3779b97f4a7c15))
}

// HotSetIDs returns the ids of the k most popular keys (ranks 0..k-1).
func HotSetIDs(k int, keys uint64) []uint64 {
	ids := make([]uint64, k)
	for r := range ids {
		ids[r] = zipf.Scramble(uint64(r), keys)
	}
	return ids
}

// RefillHotSet stores the k most popular entries (default the hot set)
// with TTL ttl, as the protections shape it (a grace period, jitter), all
// at one instant, directly on the servers: left alone, they expire
// together, the natural trigger of incident 000. It is a fault on the
// shared cache: in a run of several generators, one calls it.
func (e *Engine) RefillHotSet(ctx context.Context, k int, ttl time.Duration) (int, error) {
	if k <= 0 {
		k = e.cfg.HotSet
	}
	if uint64(k) > e.cfg.Keys {
		return 0, fmt.Errorf("refill hot set: %d keys > keyspace %d", k, e.cfg.Keys)
	}
	if ttl < time.Second {
		return 0, fmt.Errorf("refill hot set: ttl %v must be >= 1s", ttl)
	}
	if err := e.fillTop(ctx, k, ttl, e.admin, cmp.Or(e.cfg.AdminDSN, e.dsn), nil, 0); err != nil {
		return 0, fmt.Errorf("refill hot set: %w", err)
	}
	return k, nil
}

// ExpireHotSet makes the k most popular entries expire now, all at one
// instant: it deletes them, or, with stale-while-revalidate on, rewrites
// them as logically expired but still servable, which is what a TTL
// passing does to such entries. It goes to the servers directly when admin
// addresses are known. It returns how many keys it touched.
func (e *Engine) ExpireHotSet(ctx context.Context, k int) (int, error) {
	if k <= 0 {
		k = e.cfg.HotSet
	}
	if uint64(k) > e.cfg.Keys {
		return 0, fmt.Errorf("expire hot set: %d keys > keyspace %d", k, e.cfg.Keys)
	}
	return expireKeys(ctx, e.admin, e.kb, HotSetIDs(k, e.cfg.Keys), e.prot.Load().grace())
}

func expireKeys(ctx context.Context, mc *memcache.Client, kb KeyBuilder, ids []uint64, swr time.Duration) (int, error) {
	const workers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	ch := make(chan uint64)
	now := time.Now().UnixMilli()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ch {
				key := kb.Key(id)
				var err error
				if swr > 0 {
					var v []byte
					v, err = mc.Get(ctx, key)
					if err == nil {
						var ent format.Entry
						ent, err = format.Reader{Version: format.Legacy, Compatible: true}.Decode(v)
						if err == nil {
							ent.ExpiresAt = now
							var b []byte
							b, _ = format.Encode(nil, ent)
							err = mc.Set(ctx, key, b, ttlSeconds(swr))
						}
					} else if errors.Is(err, memcache.ErrCacheMiss) {
						err = nil
					}
				} else {
					err = mc.Delete(ctx, key)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		select {
		case ch <- id:
		case <-ctx.Done():
		}
	}
	close(ch)
	wg.Wait()
	if len(errs) > 0 {
		return len(ids), fmt.Errorf("expire hot set: %d of %d keys failed: %w", len(errs), len(ids), errs[0])
	}
	return len(ids), nil
}

func ttlSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// opKind is what one arrival does.
type opKind uint8

const (
	opFetch opKind = iota
	opMulti
	opWrite
	opTenantWrite
	opLookup
	opRequest
	numOpKinds
)

type op struct {
	kind     opKind
	proc     uint32
	id       uint64
	ids      []uint64
	intended time.Time
}

// Summary is what Run returns.
type Summary struct {
	Operations, Unsent                     int64
	Fetches, Hits, Misses, DBQueries, Late int64
	// DBHotReads are the database reads of the hot set's records.
	DBHotReads            int64
	Lookups, TenantWrites int64
	// Requests are the requests answered or cut; TierCalls the calls to
	// the tier they made (skipped calls are not made).
	Requests, TierCalls int64
	// Protections are the protections' counters by summary key
	// (coalesced, leaseWon, breakerOpens, ...; see each Spec's Counters).
	Protections map[string]int64
	// Errors counts errors by class; OpErrors by the operation that failed
	// (fetch, write, lookup, request).
	Errors, OpErrors map[string]int64
	// FirstErrors is the first error message of each class seen.
	FirstErrors                                           map[string]string
	FetchP50, FetchP99, FetchP999, FetchMax, DBP50, DBP99 time.Duration
	LookupP50, LookupP99, WriteP50, WriteP99              time.Duration
	RequestP50, RequestP99                                time.Duration
	Elapsed                                               time.Duration
	Processes                                             int
	// Retries counts reads retried by the app's retry layer.
	Retries int64
}

// HitRatio is hits over fetches.
func (s Summary) HitRatio() float64 {
	if s.Fetches == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Fetches)
}

// Prefill fills the cfg.Warm most popular entries, as a replay's warm-up
// does, without replaying traffic: a drill calls it in setup, so its
// traffic (and every fault's startTime) starts with a warm cache.
func Prefill(ctx context.Context, cfg Config) (int, error) {
	e, err := New(cfg, nil)
	if err != nil {
		return 0, err
	}
	defer e.closeAll()
	if err := e.warm(ctx, cfg.Warm, 0); err != nil {
		return 0, fmt.Errorf("prefill: %w", err)
	}
	return cfg.Warm, nil
}

// Run replays traffic until Duration passes or ctx is done, then closes
// every connection and goroutine it started. It may be called once.
func (e *Engine) Run(ctx context.Context) (Summary, error) {
	if !e.ran.CompareAndSwap(false, true) {
		return Summary{}, errors.New("run: engine already ran")
	}
	hw, err := openLedger(e.cfg.HDROut)
	if err != nil {
		return Summary{}, err
	}
	defer hw.close()
	fleet := make([]*process, e.cfg.Processes)
	for i := range fleet {
		if fleet[i], err = e.newProcess(i); err != nil {
			return Summary{}, err
		}
	}
	e.fleet.Store(&fleet)
	defer e.closeAll()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.runCtx = ctx

	if e.cfg.Warm > 0 {
		if err := e.warm(ctx, e.cfg.Warm, e.cacheReads()); err != nil {
			return Summary{}, fmt.Errorf("warm: %w", err)
		}
	}

	// The protections' companions run until the operations are done, and
	// Run waits for them with the background refreshes.
	bgCtx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	prot := e.prot.Load()
	for _, name := range sortedNames(prot.set) {
		if h, ok := prot.set[name].(runHook); ok {
			e.bg.Add(1)
			go func() {
				defer e.bg.Done()
				h.run(bgCtx, e)
			}()
		}
	}

	start := time.Now()
	deadline := start.Add(e.cfg.Duration)
	e.startAt = start
	e.pace.Store(&pacing{p: e.pace.Load().p, origin: start})
	close(e.started)
	work := make(chan op)
	var wg sync.WaitGroup
	for w := 0; w < e.cfg.MaxInflight; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			e.worker(ctx, w, work)
		}(w)
	}
	flushDone := make(chan struct{})
	stopFlush := make(chan struct{})
	go func() {
		defer close(flushDone)
		e.flusher(start, hw, stopFlush)
	}()

	sent, unsent := e.dispatch(ctx, work, deadline)
	close(work)
	wg.Wait()
	stopBg()
	e.bg.Wait()
	close(stopFlush)
	<-flushDone

	s := e.summary(sent, unsent, time.Since(start))
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return s, err
	}
	return s, nil
}

func (e *Engine) closeAll() {
	if f := e.fleet.Load(); f != nil {
		for _, p := range *f {
			_ = p.db.Close()
		}
	}
	for _, p := range e.closed {
		_ = p.db.Close()
	}
	_ = e.cache.Close()
	if e.admin != e.cache {
		_ = e.admin.Close()
	}
	if e.tier != nil {
		_ = e.tier.Close()
	}
}

// pacing is the pacer arrivals follow and when it started; SetRate
// replaces it.
type pacing struct {
	p      Pacer
	origin time.Time
}

// dispatch is the open-loop dispatcher: arrival n is due when the pacer
// says, whatever the latency. When every worker is busy it blocks, and the
// ops then start late (measured from their due time and counted in
// cache_late) rather than being skipped, so overload shows instead of
// hiding.
func (e *Engine) dispatch(ctx context.Context, work chan<- op, deadline time.Time) (sent, unsent int64) {
	rng := e.rand(0x6f70)
	var (
		cur  *pacing
		n    uint64
		seq  uint64
		next time.Time
		have bool // next is arrival n's due time
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if pc := e.pace.Load(); pc != cur {
			cur, n, have = pc, 0, false
		}
		if !have {
			off, ok := cur.p.Due(n)
			if !ok {
				// paused (rate 0): wait for steering
				if !sleepCtx(ctx, 10*time.Millisecond) || !time.Now().Before(deadline) {
					return
				}
				continue
			}
			next, have = cur.origin.Add(off), true
		}
		if !next.Before(deadline) {
			return
		}
		if wait := time.Until(next); wait > 0 {
			// at most 100 ms at a time, so a new rate is not waited out
			timer.Reset(min(wait, 100*time.Millisecond))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			if time.Now().Before(next) {
				continue
			}
		}
		o := e.generate(rng, seq, next)
		seq++
		n++
		have = false
		e.stats.ledger.offer(o.intended, o.kind)
		select {
		case work <- o:
			sent++
			continue
		default:
		}
		// all workers busy: wait, but never past the deadline
		dl := time.NewTimer(time.Until(deadline))
		select {
		case work <- o:
			sent++
			dl.Stop()
		case <-ctx.Done():
			dl.Stop()
			e.stats.ledger.finish(histShards, o.intended, o.kind, Unfinished, 0, false)
			return
		case <-dl.C:
			// This one and every arrival due before the deadline came due
			// and never started: the ledger counts them unsent.
			e.stats.ledger.finish(histShards, o.intended, o.kind, Unsent, 0, false)
			unsent++
			for {
				off, ok := cur.p.Due(n)
				if !ok || !cur.origin.Add(off).Before(deadline) {
					return
				}
				u := e.generate(rng, seq, cur.origin.Add(off))
				seq++
				n++
				e.stats.ledger.unsent(u.intended, u.kind)
				unsent++
			}
		}
	}
}

// cacheReads is the keys the replay reads from the cache per second at
// its start rate: fetches one each, fetch_multi MultiSize (writes and
// lookups read none, requests read the tier).
func (e *Engine) cacheReads() float64 {
	m := e.mix.Load()
	fetch := 1 - m.sum()
	return e.cfg.Rate * (max(fetch, 0) + m.MultiFraction*float64(e.cfg.MultiSize))
}

func (e *Engine) generate(rng *rand.Rand, seq uint64, due time.Time) op {
	o := op{intended: due, proc: uint32(seq)}
	u := rng.Float64()
	m := e.mix.Load()
	w := m.WriteFraction
	tw := w + m.TenantWriteFraction
	lk := tw + m.LookupFraction
	mu := lk + m.MultiFraction
	// requests last, so a mix without them draws what it always drew
	rq := mu + m.RequestFraction
	switch {
	case u < w:
		o.kind = opWrite
		o.id = e.zipf.Next(rng)
		// Redrawn, not shifted, so the other records keep their relative
		// popularity; bounded, as a hot set near the keyspace's size could
		// hold nearly all of the draws.
		for try := 0; e.cfg.HotSetReadOnly && e.hot[o.id] && try < 1000; try++ {
			o.id = e.zipf.Next(rng)
		}
	case u < tw:
		// tenants are equally busy, and rows within a tenant
		o.kind = opTenantWrite
		o.id = rng.Uint64N(uint64(e.cfg.Tenants) * uint64(e.cfg.TenantRows))
	case u < lk:
		o.kind = opLookup
		o.id = e.zipf.Next(rng)
	case u < mu:
		o.kind = opMulti
		o.ids = make([]uint64, e.cfg.MultiSize)
		for i := range o.ids {
			o.ids[i] = e.zipf.Next(rng)
		}
	case u < rq:
		o.kind = opRequest
		o.ids = make([]uint64, e.cfg.RequestCalls)
		for i := range o.ids {
			o.ids[i] = e.zipf.Next(rng)
		}
	default:
		o.kind = opFetch
		o.id = e.zipf.Next(rng)
	}
	return o
}

func (e *Engine) flusher(start time.Time, hw *ledgerWriter, stop <-chan struct{}) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	sec := start
	names := e.cache.Servers()
	var breakerOpens int64
	// the tier's breakers count with the cache's: both guard callers' time
	allOpens := func() int64 {
		n := e.cache.BreakerOpens()
		if e.tier != nil {
			n += e.tier.BreakerOpens()
		}
		return n
	}
	flush := func(now time.Time, final bool) {
		var conns int64
		f := e.fleet.Load()
		n := 0
		if f != nil {
			n = len(*f)
			for _, p := range *f {
				conns += int64(p.db.Stats().OpenConnections)
			}
		}
		out := e.stats.collect(now, names, n, conns)
		if opens := allOpens(); opens != breakerOpens {
			out = append(out, e.stats.counterSample(now, MetricBreakerOpen, float64(opens-breakerOpens)))
			breakerOpens = opens
		}
		e.sink.Push(out)
		// The ledger is written once a second: most buckets are then
		// complete, so each is encoded about once.
		if final || now.Sub(sec) >= time.Second {
			_ = e.stats.ledger.write(hw)
			sec = now
		}
		if final {
			_ = e.writeTenantTally(hw, now)
		}
	}
	for {
		select {
		case now := <-t.C:
			flush(now, false)
		case <-stop:
			flush(time.Now(), true)
			return
		}
	}
}

func (e *Engine) summary(sent, unsent int64, elapsed time.Duration) Summary {
	s := e.stats
	tot := func(name string) int64 { return int64(s.totals[name]) }
	errs := map[string]int64{}
	for c, v := range s.errTotals {
		errs[c] = int64(v)
	}
	opErrs := map[string]int64{}
	for c, v := range s.opErrTotals {
		opErrs[c] = int64(v)
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	prot := map[string]int64{}
	for _, sp := range registry {
		for _, c := range sp.Counters {
			prot[c.Summary] = tot(c.Metric)
		}
	}
	return Summary{
		Operations: sent, Unsent: unsent,
		Fetches: tot(MetricFetches), Hits: tot(MetricHits), Misses: tot(MetricMisses),
		DBQueries: tot(MetricDBQueries), DBHotReads: tot(MetricDBHotReads), Late: tot(MetricLate), Lookups: tot(MetricLookups),
		Requests: tot(MetricRequests), TierCalls: tot(MetricTierCalls),
		RequestP50: us(s.tot[hRequest].ValueAtQuantile(50)), RequestP99: us(s.tot[hRequest].ValueAtQuantile(99)),
		Protections: prot, Errors: errs, OpErrors: opErrs, FirstErrors: s.firstErrors(),
		LookupP50: us(s.tot[hLookup].ValueAtQuantile(50)), LookupP99: us(s.tot[hLookup].ValueAtQuantile(99)),
		WriteP50: us(s.tot[hWrite].ValueAtQuantile(50)), WriteP99: us(s.tot[hWrite].ValueAtQuantile(99)), TenantWrites: tot(MetricTenantWrite),
		FetchP50: us(s.tot[hFetch].ValueAtQuantile(50)), FetchP99: us(s.tot[hFetch].ValueAtQuantile(99)),
		FetchP999: us(s.tot[hFetch].ValueAtQuantile(99.9)), FetchMax: us(s.tot[hFetch].Max()),
		DBP50: us(s.tot[hDB].ValueAtQuantile(50)), DBP99: us(s.tot[hDB].ValueAtQuantile(99)),
		Elapsed: elapsed, Processes: e.Processes(),
		Retries: tot(MetricRetries),
	}
}
