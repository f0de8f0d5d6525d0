//go:build integration

package traffic_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/traffic"
	"github.com/firedrill-dev/firedrill/traffic/format"
	"github.com/firedrill-dev/firedrill/traffic/memcache"
	"github.com/firedrill-dev/firedrill/traffic/zipf"
)

// The environment comes from environments.Up (Docker; the tests fail if it
// cannot start). FIREDRILL_TEST_HOST=1 with FIREDRILL_* variables set uses
// already running servers instead, for development on a host.
var env struct {
	cache, direct []string
	dsn, adminDSN string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	if os.Getenv("FIREDRILL_TEST_HOST") == "1" {
		env.cache = strings.Split(os.Getenv("FIREDRILL_MEMCACHED"), ",")
		env.direct = strings.Split(os.Getenv("FIREDRILL_MEMCACHED_DIRECT"), ",")
		env.dsn = os.Getenv("FIREDRILL_MYSQL_DSN")
		env.adminDSN = os.Getenv("FIREDRILL_MYSQL_ADMIN_DSN")
	} else {
		upCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		e, err := environments.Up(upCtx, environments.WithMemcached(2))
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "integration: environments.Up failed (Docker is required):", err)
			if e != nil {
				_ = e.Down(context.Background())
			}
			return 1
		}
		defer func() { _ = e.Down(context.Background()) }()
		for _, s := range e.Memcached {
			env.cache = append(env.cache, s.ProxyAddr)
			env.direct = append(env.direct, s.DirectAddr)
		}
		env.dsn, env.adminDSN = e.DB.DSN, e.DB.AdminDSN
	}
	sc := traffic.NewSeedConfig()
	sc.DSN, sc.Rows, sc.Table = env.adminDSN, 20000, "it_records"
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := traffic.Seed(sctx, sc); err != nil {
		fmt.Fprintln(os.Stderr, "integration: seed:", err)
		return 1
	}
	return m.Run()
}

// recorder keeps every pushed sample.
type recorder struct {
	mu      sync.Mutex
	samples []traffic.Sample
}

func (r *recorder) Push(s []traffic.Sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s...)
	r.mu.Unlock()
}

// sum adds metric values with from <= t < to.
func (r *recorder) sum(metric string, from, to time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := 0.0
	for _, s := range r.samples {
		if s.Metric == metric && !s.Time.Before(from) && s.Time.Before(to) {
			v += s.Value
		}
	}
	return v
}

func (r *recorder) peak(metric string, from, to time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	byT := map[time.Time]float64{}
	for _, s := range r.samples {
		if s.Metric == metric && !s.Time.Before(from) && s.Time.Before(to) {
			byT[s.Time] += s.Value
		}
	}
	m := 0.0
	for _, v := range byT {
		m = max(m, v)
	}
	return m
}

func flushAll(t *testing.T) {
	t.Helper()
	mc, err := memcache.New(env.direct)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	if err := mc.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func baseConfig(opts ...traffic.Option) traffic.Config {
	c := traffic.NewConfig(append([]traffic.Option{
		traffic.WithCacheAddrs(env.cache...), traffic.WithDSN(env.dsn), traffic.WithKeys(20000, 20000),
	}, opts...)...)
	c.AdminCacheAddrs = env.direct
	c.Table = "it_records"
	c.HDROut = ""
	c.Processes = 4
	c.PoolSize = 8
	return c
}

// patient sets deadlines far above any stall for tests that assert no
// errors but are about something other than deadlines: on a CI machine
// busy elsewhere a plain primary-key SELECT once took 800 ms, which the
// 1 s / 500 ms defaults turned into errors.
func patient(c *traffic.Config) {
	c.DBTimeout, c.CacheTimeout = 10*time.Second, 5*time.Second
}

func TestHitAndMissFill(t *testing.T) { hitAndMissFill(t, false) }

func TestHitAndMissFillMux(t *testing.T) { hitAndMissFill(t, true) }

func hitAndMissFill(t *testing.T, mux bool) {
	flushAll(t)
	// a modest rate: a cold cache sends most of it to the database, which
	// runs in a container behind Toxiproxy on a shared 2-core machine
	c := baseConfig(traffic.WithRate(300), traffic.WithDuration(3*time.Second))
	c.CacheMux = mux
	c.Warm = 0
	patient(&c)
	rec := &recorder{}
	e, err := traffic.New(c, rec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary: %+v", s)
	if s.Operations < 850 || s.Operations > 900 {
		t.Errorf("operations = %d, want about rate x duration (<= 2000)", s.Operations)
	}
	if s.Misses == 0 || s.DBQueries == 0 {
		t.Errorf("expected misses and fills on a cold cache: %+v", s)
	}
	if s.Hits == 0 || s.HitRatio() < 0.2 {
		t.Errorf("expected hits after fills (Zipf 0.99): hit ratio %.2f", s.HitRatio())
	}
	if len(s.Errors) != 0 {
		t.Errorf("errors: %v", s.Errors)
	}
	// the most popular key was filled in the legacy format, on the server
	// ketama places it on
	key := e.Keys().Key(traffic.HotSetIDs(1, 20000)[0])
	mc, _ := memcache.New(env.cache, memcache.WithDialAddrs(env.direct))
	defer mc.Close()
	v, err := mc.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("hot key %s not cached: %v", key, err)
	}
	if f, _ := format.Detect(v); f != format.Legacy {
		t.Errorf("hot key format = %v, want legacy", f)
	}
}

// drill runs one replay and calls action at offset after traffic starts.
// It returns the recorder, the action's instant and the summary.
func drill(t *testing.T, c traffic.Config, at time.Duration, action func(*traffic.Engine)) (*recorder, time.Time, traffic.Summary) {
	t.Helper()
	rec := &recorder{}
	e, err := traffic.New(c, rec)
	if err != nil {
		t.Fatal(err)
	}
	var actAt time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-e.Started()
		time.Sleep(time.Until(e.StartTime().Add(at)))
		actAt = time.Now()
		if action != nil {
			action(e)
		}
	}()
	s, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-done
	return rec, actAt, s
}

// stampedeConfig: a fully warmed cache (so steady misses are ~0), an
// expensive miss path and a bounded pool, so a hot-set expiry is a burst.
func stampedeConfig(p traffic.Protections, opts ...traffic.Option) traffic.Config {
	c := baseConfig(append([]traffic.Option{traffic.WithRate(3000), traffic.WithDuration(4 * time.Second), traffic.WithProtections(p)}, opts...)...)
	c.HotSet = 200
	c.Warm = 20000
	c.TTL = time.Hour
	c.QueryDelay = 100 * time.Millisecond
	// Two processes: coalescing allows one fill per key per process, so
	// its spike is bounded by processes x hot keys; the unprotected spike
	// is every hot-key miss until a fill lands. Enough workers that the
	// unprotected demand is not capped by waiting operations (with the
	// default 1024 a busy CI machine capped it near coalescing's bound).
	c.Processes, c.PoolSize = 2, 16
	c.MaxInflight = 4096
	c.Seed = 7
	return c
}

func defaultProtections() traffic.Protections { return traffic.NewProtections() }

// protections are the defaults with the options m (as a script gives them).
func protections(t *testing.T, m map[string]any) traffic.Protections {
	t.Helper()
	p := traffic.NewProtections()
	if err := p.Apply(m); err != nil {
		t.Fatal(err)
	}
	return p
}

// expirySpike is DB queries in the second after expireHotSet, minus the
// steady rate of the second before it.
func expirySpike(t *testing.T, p traffic.Protections) (float64, traffic.Summary) {
	t.Helper()
	flushAll(t)
	c := stampedeConfig(p)
	rec, at, s := drill(t, c, 2*time.Second, func(e *traffic.Engine) {
		if _, err := e.ExpireHotSet(context.Background(), 0); err != nil {
			t.Error(err)
		}
	})
	before := rec.sum(traffic.MetricDBQueries, at.Add(-time.Second), at)
	after := rec.sum(traffic.MetricDBQueries, at, at.Add(time.Second))
	t.Logf("protections %v: db queries 1s before %v, 1s after %v; summary %+v", p.On(), before, after, s)
	return after - before, s
}

func TestHotSetExpirySpikesAndProtectionsReduceIt(t *testing.T) {
	base, _ := expirySpike(t, defaultProtections())
	if base < 400 {
		t.Fatalf("unprotected hot-set expiry spike = %v extra queries, want a stampede (> 2x the 200 hot keys)", base)
	}
	cases := map[string]map[string]any{
		"coalesce":             {"coalesce": true},
		"fillLock":             {"fillLock": true, "fillLockTries": int64(20)},
		"leases":               {"leases": true, "leaseTries": int64(50)},
		"staleWhileRevalidate": {"staleWhileRevalidate": "1m"},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			spike, _ := expirySpike(t, protections(t, opts))
			if spike >= base*0.7 {
				t.Errorf("%s: spike %v extra queries, unprotected %v: want at least 30%% lower", name, spike, base)
			}
		})
	}
	t.Run("dbLimit", func(t *testing.T) {
		flushAll(t)
		c := stampedeConfig(protections(t, map[string]any{"dbLimit": int64(2)}))
		rec, at, s := drill(t, c, 2*time.Second, func(e *traffic.Engine) { _, _ = e.ExpireHotSet(context.Background(), 0) })
		peak := rec.peak(traffic.MetricDBInflight, at, at.Add(time.Second))
		if peak > float64(2*c.Processes) {
			t.Errorf("db_inflight peak %v with dbLimit 2 x %d processes", peak, c.Processes)
		}
		if s.Errors[traffic.ClassShed] == 0 {
			t.Errorf("expected shed queries: %+v", s.Errors)
		}
	})
}

// RefillHotSet stores the hot set with one short TTL: while it lives the
// hot keys hit, and once it passes they expire together and each is
// filled from the database again.
func TestRefillHotSetExpiresTogether(t *testing.T) {
	flushAll(t)
	c := stampedeConfig(defaultProtections(), traffic.WithDuration(5*time.Second))
	var start, done time.Time
	rec, _, s := drill(t, c, time.Second, func(e *traffic.Engine) {
		start = time.Now()
		n, err := e.RefillHotSet(context.Background(), 0, 2*time.Second)
		done = time.Now()
		if err != nil || n != 200 {
			t.Errorf("RefillHotSet = %d, %v; want the 200 hot keys", n, err)
		}
	})
	// memcached counts TTLs in whole seconds of a clock that ticks once a
	// second: a 2 s TTL ends between 1 and 2 s after the set. The entries
	// set first bound the window in which all of them live (judged from
	// the refill's end, a CI run in which the sets took a busy host's
	// time saw the first ones expire inside it). 100 ms of margin for a
	// late tick of memcached's clock.
	liveUntil := start.Add(900 * time.Millisecond)
	alive := rec.sum(traffic.MetricDBQueries, done, liveUntil)
	expiry := rec.sum(traffic.MetricDBQueries, liveUntil, done.Add(3*time.Second))
	t.Logf("refill took %v; db queries while the whole hot set lived %v, in the 2 s around its expiry %v; summary %+v", done.Sub(start), alive, expiry, s)
	if expiry < 150 || expiry < 3*alive {
		t.Errorf("db queries around the expiry = %v (in the second before: %v): want most of the 200 hot keys filled again", expiry, alive)
	}
	// the hot set's own reads: none while its entries live, and the
	// expiry's refills among them
	hotAlive := rec.sum(traffic.MetricDBHotReads, done, liveUntil)
	hotExpiry := rec.sum(traffic.MetricDBHotReads, liveUntil, done.Add(3*time.Second))
	if hotAlive > 0 || hotExpiry < 150 || hotExpiry > expiry {
		t.Errorf("db_hot_reads = %v while the hot set lived, %v around its expiry (db queries %v): want 0, then at least 150 and at most the queries", hotAlive, hotExpiry, expiry)
	}
	if s.DBHotReads == 0 || s.DBHotReads > s.DBQueries {
		t.Errorf("summary: %d hot reads of %d db queries: want some, and no more than the queries", s.DBHotReads, s.DBQueries)
	}
	e, err := traffic.New(c, rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.RefillHotSet(context.Background(), 0, 10*time.Millisecond); err == nil {
		t.Error("RefillHotSet with a 10ms TTL: want an error (memcached TTLs are whole seconds)")
	}
}

// A warm with warmAbsent leaves that share of the entries out, at random,
// and keeps the hot set whole when writes stay off it: a cache as
// invalidating writes leave it.
func TestWarmLeavesAShareAbsent(t *testing.T) {
	flushAll(t)
	c := baseConfig()
	c.Keys, c.Warm, c.HotSet = 4000, 4000, 100
	c.HotSetReadOnly = true
	c.WarmAbsent = 0.25
	c.TTL, c.WarmTTL = time.Minute, time.Minute
	if _, err := traffic.Prefill(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	mc, err := memcache.New(env.cache, memcache.WithDialAddrs(env.direct))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	e, err := traffic.New(c, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	kb := e.Keys()
	// Ranks map to ids by a hash (YCSB's), so over a keyspace this small
	// several ranks share an id: it is drawn once, as every other id (the
	// most read ids are shared ones, and a draw per rank kept them far
	// more often, so a replay's refills climbed for minutes).
	draws, hotID := map[uint64]int{}, map[uint64]bool{}
	for rank, id := range traffic.HotSetIDs(int(c.Keys), c.Keys) {
		if rank < c.HotSet {
			hotID[id] = true
		} else {
			draws[id]++
		}
	}
	// Writes fall on the cold keys only, so their odds of being absent
	// grow by 1/(1 - the hot set's share of reads).
	hotShare := zipf.TopShare(uint64(c.HotSet), c.Keys, c.Theta)
	odds := c.WarmAbsent / (1 - c.WarmAbsent) / (1 - hotShare)
	cold := odds / (1 + odds)
	present, hot := 0, 0
	var want, variance float64
	for id := range draws {
		if !hotID[id] {
			p := 1 - cold
			want += p
			variance += p * (1 - p)
		}
	}
	for id := range hotID {
		want++
		draws[id] = 0
	}
	for id := range draws {
		if _, err := mc.Get(context.Background(), kb.Key(id)); err == nil {
			present++
			if hotID[id] {
				hot++
			}
		}
	}
	t.Logf("present %d of %d ids, want %.0f +- %.0f (1 sigma); hot set %d of %d", present, len(draws), want, math.Sqrt(variance), hot, len(hotID))
	if hot != len(hotID) {
		t.Errorf("hot set: %d of %d present, want all (writes stay off it)", hot, len(hotID))
	}
	if math.Abs(float64(present)-want) > 4*math.Sqrt(variance) {
		t.Errorf("present %d entries, want %.0f +- %.0f (4 sigma): %.3f of the draws outside the hot set left out", present, want, 4*math.Sqrt(variance), cold)
	}
}

// A fleet half on the new format: every entry a new process refills is a
// miss for the old processes (Rails 6.1 cannot read 7.0 entries), which
// refill it again; the new ones read the old format. The database load
// rises by the new share of the refills that an old process reads before
// they expire (measured here: about a quarter, 1.23-1.24x), for as long as
// the fleet stays mixed; reading both formats (compatRead) removes the
// rise (1.01x; at most 1.1x is "no rise" within the counting noise of two
// 6 s windows, about 3.4%).
func TestFormatFlipRaisesDBQueries(t *testing.T) {
	run := func(p traffic.Protections) (float64, float64) {
		flushAll(t)
		c := baseConfig(traffic.WithRate(2000), traffic.WithDuration(15*time.Second), traffic.WithProtections(p))
		// 2000 keys, each read often: almost every refill a new process
		// makes is read by an old one before it expires
		c.Keys, c.Warm = 2000, 2000
		c.WarmSpread = true // entries expire one by one: a steady refill
		c.TTL = 3 * time.Second
		rec, at, _ := drill(t, c, 7*time.Second, func(e *traffic.Engine) {
			if err := e.FlipFormat(0.5); err != nil {
				t.Error(err)
			}
		})
		// windows of two TTLs each: every entry expires twice in either,
		// so the refill wave of a fixed TTL does not alias into the
		// counts; one TTL each (about 900 queries) left a counting noise
		// of 5% on the ratio, and compatRead read 1.087 once
		before := rec.sum(traffic.MetricDBQueries, at.Add(-6*time.Second), at) / 6
		after := rec.sum(traffic.MetricDBQueries, at.Add(time.Second), at.Add(7*time.Second)) / 6
		return before, after
	}
	before, after := run(defaultProtections())
	t.Logf("flip: db queries/s before %v, after %v", before, after)
	if after < 1.15*before {
		t.Errorf("half the fleet on the new format: db queries/s %v -> %v, want a rise of 15%% at least", before, after)
	}
	cb, ca := run(protections(t, map[string]any{"compatRead": true}))
	t.Logf("flip with compatRead: db queries/s before %v, after %v", cb, ca)
	// 3 sigma of the counting noise over the 1.01x measured
	if ca > 1.1*cb {
		t.Errorf("compatRead: db queries/s %v -> %v, want no rise", cb, ca)
	}
}

// Lookups query by the indexed ref column; SetMix turns them off mid-run,
// and Totals shows the counts while the replay runs.
func TestLookupsAndSetMix(t *testing.T) {
	c := baseConfig(traffic.WithRate(200), traffic.WithDuration(4*time.Second))
	c.LookupFraction = 0.25
	patient(&c)
	rec := &recorder{}
	e, err := traffic.New(c, rec)
	if err != nil {
		t.Fatal(err)
	}
	var mid traffic.Totals
	var switched time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-e.Started()
		time.Sleep(2 * time.Second)
		mid = e.Totals()
		if err := e.SetMix(traffic.Mix{}); err != nil {
			t.Error(err)
		}
		switched = time.Now()
	}()
	s, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-done
	t.Logf("summary: %+v; totals at 2 s: %+v", s, mid)
	if mid.Counters[traffic.MetricLookups] < 50 {
		t.Errorf("lookups counted by 2 s = %d, want about 100 (25%% of 200/s)", mid.Counters[traffic.MetricLookups])
	}
	if len(s.Errors) != 0 || s.LookupP99 <= 0 {
		t.Errorf("lookups: errors %v, p99 %v", s.Errors, s.LookupP99)
	}
	// one interval may still carry lookups started before the switch
	if after := rec.sum(traffic.MetricLookups, switched.Add(200*time.Millisecond), time.Now()); after != 0 {
		t.Errorf("%v lookups after SetMix turned them off", after)
	}
	if err := e.SetMix(traffic.Mix{LookupFraction: 0.7, WriteFraction: 0.5}); err == nil {
		t.Error("SetMix accepted fractions summing over 1")
	}
}

// A ramp from 100/s to 600/s over 2 s, then 600/s for 1 s: about 700 + 600
// operations, and the last second runs at the ramp's end rate.
func TestStagesRamp(t *testing.T) {
	c := baseConfig(traffic.WithRate(100), traffic.WithDuration(3*time.Second),
		traffic.WithStages(traffic.Stage{Duration: 2 * time.Second, Target: 600}, traffic.Stage{Duration: time.Second, Target: 600}))
	rec := &recorder{}
	e, err := traffic.New(c, rec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary: %+v", s)
	if s.Operations < 1170 || s.Operations > 1300 {
		t.Errorf("operations = %d, want about 1300 (the ramp's integral, never more)", s.Operations)
	}
	start := e.StartTime()
	first := rec.sum(traffic.MetricFetches, start, start.Add(time.Second))
	last := rec.sum(traffic.MetricFetches, start.Add(2*time.Second), start.Add(4*time.Second))
	if !(first < 450 && last > 500) {
		t.Errorf("fetches in the first second %v (want about 350), in the last %v (want about 600)", first, last)
	}
}

// fetch_multi sends one multi-row SELECT for its misses; writes update the
// row and delete its entry.
func TestFetchMultiAndWrites(t *testing.T) {
	flushAll(t)
	c := baseConfig(traffic.WithRate(200), traffic.WithDuration(3*time.Second))
	c.MultiFraction, c.MultiSize, c.WriteFraction = 0.5, 8, 0.2
	c.Warm = 0
	patient(&c)
	e, err := traffic.New(c, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary: %+v", s)
	multi := float64(s.Operations) * 0.5
	// fetches count keys: single fetches plus 8 per fetch_multi
	if float64(s.Fetches) < multi*8*0.8 {
		t.Errorf("fetches = %d, want about %.0f keys from fetch_multi alone", s.Fetches, multi*8)
	}
	// one query per fetch_multi with misses, one per miss of a single
	// fetch, one per write: far fewer than one per missed key
	if s.DBQueries >= s.Misses {
		t.Errorf("db queries %d >= misses %d: fetch_multi did not batch its misses", s.DBQueries, s.Misses)
	}
	if len(s.Errors) != 0 {
		t.Errorf("errors: %v", s.Errors)
	}
	// writes reached the table
	db, err := sql.Open("mysql", env.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("SELECT MAX(version) FROM it_records").Scan(&v); err != nil || v < 2 {
		t.Errorf("no row was updated by writes: max version %d, %v", v, err)
	}
}

// A fill's work is real work on the database's CPU: the more rows each
// fill reads, the fewer fills a second the database serves, and the
// longer each takes with the same connections running.
func TestCalibrateMeasuresTheFillsWork(t *testing.T) {
	light := baseConfig()
	heavy := baseConfig()
	heavy.FillWork = 20000
	cl, err := traffic.Calibrate(context.Background(), light, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := traffic.Calibrate(context.Background(), heavy, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("capacity: plain fills %.0f/s (mean %.2f ms), fills reading 20000 rows %.0f/s (mean %.2f ms)",
		cl.FillsPerSecond, cl.MeanMs, ch.FillsPerSecond, ch.MeanMs)
	if ch.FillsPerSecond <= 0 || ch.FillsPerSecond > cl.FillsPerSecond/3 || ch.MeanMs < 3*cl.MeanMs {
		t.Errorf("a fill reading 20000 rows: %.0f/s, %.2f ms; a plain fill %.0f/s, %.2f ms: want it at least 3x costlier",
			ch.FillsPerSecond, ch.MeanMs, cl.FillsPerSecond, cl.MeanMs)
	}
	// past the table's 20000 rows the work reads it in passes: two cost
	// about twice one
	twice := baseConfig()
	twice.FillWork = 40000
	c2, err := traffic.Calibrate(context.Background(), twice, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fills reading the table twice: %.0f/s (mean %.2f ms)", c2.FillsPerSecond, c2.MeanMs)
	if c2.MeanMs < 1.4*ch.MeanMs {
		t.Errorf("a fill reading 40000 rows (2 passes): %.2f ms; one reading 20000: %.2f ms: want it at least 1.4x costlier",
			c2.MeanMs, ch.MeanMs)
	}
	twice.FillWork = traffic.MaxFillPasses*20000 + 1
	if _, err := traffic.Calibrate(context.Background(), twice, 4, time.Second); err == nil {
		t.Error("fill work past 64 passes over the table: want an error")
	}
}

// With one idle connection kept, a process's pool closes its second
// connection when its query ends: after a burst what stays open is one
// connection, not every connection the burst's overlapping fills opened.
func TestPoolIdleConnsClosesTheSecondConnection(t *testing.T) {
	db, err := sql.Open("mysql", env.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	threads := func() int {
		var name string
		var n int
		if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Threads_connected'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	open := map[int]int{}
	for _, idle := range []int{0, 1} {
		flushAll(t)
		c := baseConfig(traffic.WithRate(300), traffic.WithDuration(3*time.Second))
		patient(&c)
		c.Warm = 0
		c.Processes, c.PoolSize, c.PoolIdleConns = 1, 8, idle
		c.QueryDelay = 20 * time.Millisecond // a cold cache's fills overlap: the pool opens several connections
		base := threads()
		// a burst of a second, then almost nothing: what the pool keeps open
		drill(t, c, time.Second, func(e *traffic.Engine) {
			if err := e.SetRate(1); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Second)
			open[idle] = threads() - base
		})
		t.Logf("poolIdleConns %d: %d connections open after the burst", idle, open[idle])
	}
	if open[0] < 3 || open[1] > 1 {
		t.Errorf("connections open after a burst: %d keeping all idle, %d keeping one; want at least 3, and at most 1",
			open[0], open[1])
	}
}
