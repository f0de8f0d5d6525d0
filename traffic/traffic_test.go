package traffic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/firedrill-dev/firedrill/traffic/format"
	"github.com/firedrill-dev/firedrill/traffic/memcache"
)

func TestKeyBuilder(t *testing.T) {
	kb := NewKeyBuilder("", 8, "Record", "1a2b3c4d")
	if got, want := kb.Key(42), "IDC:8:blob:Record:1a2b3c4d:42"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
	if got := string(kb.AppendKey(nil, 42)); got != kb.Key(42) {
		t.Errorf("AppendKey = %q", got)
	}
	if got := NewKeyBuilder("app:", 7, "Conversation", "ff").Key(1); got != "app:IDC:7:blob:Conversation:ff:1" {
		t.Errorf("namespaced key = %q", got)
	}
	// a schema change moves the model to a new key space
	if schemaHash("a") == schemaHash("b") || len(schemaHash("a")) != 8 {
		t.Error("schema hash must depend on the table and be 8 hex chars")
	}
}

func TestConfigFromMapDefaultsAndValues(t *testing.T) {
	t.Setenv("FIREDRILL_MEMCACHED", "127.0.0.1:1,127.0.0.1:2")
	t.Setenv("FIREDRILL_MEMCACHED_DIRECT", "")
	t.Setenv("FIREDRILL_SEED", "77")
	c, err := ConfigFromMap(map[string]any{
		"rate": int64(2000), "duration": "5s", "ttl": float64(3000), "format": "7.0",
		"protections": map[string]any{"coalesce": true, "ttlJitter": 0.2, "fillLockWait": "10ms"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.CacheAddrs) != 2 || c.Seed != 77 || c.Rate != 2000 || c.Duration != 5*time.Second ||
		c.TTL != 3*time.Second || c.Format != format.Current || !c.Protections.Get("coalesce").Enabled() ||
		c.Protections.Get("ttlJitter").(*ttlJitter).Fraction != 0.2 || c.Protections.Get("fillLock").(*fillLock).Wait != 10*time.Millisecond ||
		c.Protections.Get("fillLock").Enabled() || strings.Join(c.Protections.On(), ",") != "coalesce,ttlJitter" {
		t.Errorf("config = %+v, protections on %v", c, c.Protections.On())
	}
	if c.Keys != c.Rows || c.Warm != c.HotSet || c.Theta != 0.99 {
		t.Errorf("derived defaults: keys %d rows %d warm %d hot %d", c.Keys, c.Rows, c.Warm, c.HotSet)
	}
	if !c.CacheMux {
		t.Error("cacheMux off by default, want on")
	}
	if c, err := ConfigFromMap(map[string]any{"cacheMux": false}); err != nil || c.CacheMux {
		t.Errorf("cacheMux false: CacheMux %v, %v; want the pool", c.CacheMux, err)
	}
}

func TestConfigFromMapErrorsNameTheOption(t *testing.T) {
	t.Setenv("FIREDRILL_MEMCACHED", "127.0.0.1:1")
	t.Setenv("FIREDRILL_MEMCACHED_DIRECT", "")
	t.Setenv("FIREDRILL_TIER", "")
	cases := []struct {
		m    map[string]any
		want string
	}{
		{map[string]any{"rat": 1}, `option rat: unknown (known: adminDsn, arrivals,`},
		{map[string]any{"rate": "fast"}, "option rate"},
		{map[string]any{"rate": float64(-1)}, "option rate"},
		{map[string]any{"duration": "soon"}, "option duration"},
		{map[string]any{"theta": float64(1)}, "option theta"},
		{map[string]any{"processes": float64(1.5)}, "option processes"},
		{map[string]any{"processes": int64(0)}, "option processes"},
		{map[string]any{"format": "8.0"}, "option format"},
		{map[string]any{"table": "x; DROP"}, "option table"},
		{map[string]any{"arrivals": "bursty"}, "option arrivals"},
		{map[string]any{"protections": map[string]any{"lease": true}}, `unknown option "protections.lease"`},
		{map[string]any{"protections": map[string]any{"ttlJitter": float64(2)}}, "option protections.ttlJitter"},
		{map[string]any{"protections": map[string]any{"fillLock": true, "leases": true}}, "fillLock and leases"},
		{map[string]any{"protections": map[string]any{"coalesce": "yes"}}, "option protections.coalesce"},
		{map[string]any{"lookupFraction": 0.6, "writeFraction": 0.5}, "writeFraction+multiFraction+lookupFraction+tenantWriteFraction+requestFraction: together 1.1"},
		{map[string]any{"multiFraction": float64(2)}, "option multiFraction"},
		{map[string]any{"protections": map[string]any{"breaker": float64(-1)}}, "option protections.breaker"},
		{map[string]any{"cacheBreaker": int64(5)}, `option cacheBreaker: unknown`}, // it moved under protections
		{map[string]any{"tenantWriteFraction": float64(-0.1)}, "option tenantWriteFraction"},
		{map[string]any{"tenantPrefix": "x`; DROP"}, "option tenantPrefix"},
		{map[string]any{"tenants": int64(0)}, "option tenants"},
		{map[string]any{"protections": map[string]any{"breakerCooldown": "0s"}}, "option protections.breakerCooldown"},
		// IdentityCache's fetch_multi takes no fill lock and no lease;
		// coalescing works on single fetches.
		{map[string]any{"multiFraction": 0.3, "protections": map[string]any{"fillLock": true}}, "protection fillLock does not work on fetch_multi"},
		{map[string]any{"multiFraction": 0.3, "protections": map[string]any{"leases": true}}, "protection leases does not work on fetch_multi"},
		{map[string]any{"multiFraction": 0.3, "protections": map[string]any{"coalesce": true}}, "protection coalesce does not work on fetch_multi"},
		{map[string]any{"cacheConnectTimeout": "x"}, "option cacheConnectTimeout"},
		{map[string]any{"poolIdle": "-1s"}, "option poolIdle"},
		{map[string]any{"warmAbsent": float64(1)}, "option warmAbsent"},
		{map[string]any{"warmAbsent": float64(-0.1)}, "option warmAbsent"},
		{map[string]any{"stages": "up"}, "option stages"},
		{map[string]any{"stages": []any{map[string]any{"duration": "5s"}}}, "option stages[0].target: required but not given"},
		{map[string]any{"stages": []any{map[string]any{"duration": "5s", "target": 1, "rate": 2}}}, "stages[0].rate"},
		{map[string]any{"stages": []any{map[string]any{"duration": "0s", "target": 1}}}, "option stages[0].duration"},
		{map[string]any{"stages": []any{map[string]any{"duration": "1s", "target": float64(-5)}}}, "option stages[0].target"},
		// requests call the cache tier, which a drill asks for with @tier
		{map[string]any{"requestFraction": 0.5}, `option tier: requestFraction 0.5 needs the tier's servers (FIREDRILL_TIER: a drill asks for them with "@tier N" in its header)`},
		{map[string]any{"requestFraction": 1.5, "tier": "127.0.0.1:3"}, "option requestFraction: 1.5 must be in [0, 1]"},
		{map[string]any{"requestFraction": 0.5, "lookupFraction": 0.6, "tier": "127.0.0.1:3"}, "requestFraction: together 1.1"},
		{map[string]any{"requestCalls": int64(0)}, "option requestCalls: 0 must be in [1, 1000]"},
		{map[string]any{"requestCalls": 2.5}, "option requestCalls"},
		{map[string]any{"tierTimeout": "0s"}, "option tierTimeout: 0s must be > 0"},
		{map[string]any{"tierConnectTimeout": "-1s"}, "option tierConnectTimeout: -1s must be > 0"},
		{map[string]any{"tierConnectTimeout": "soon"}, "option tierConnectTimeout"},
		{map[string]any{"tier": 7}, "option tier"},
		{map[string]any{"protections": map[string]any{"tierFlag": "on"}}, "option protections.tierFlag"},
		{map[string]any{"protections": map[string]any{"tierFlag": true, "tierFlagProbe": "1ms"}}, "option protections.tierFlagProbe: 1ms must be in [10ms, 1m]"},
	}
	for _, tc := range cases {
		_, err := ConfigFromMap(tc.m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ConfigFromMap(%v) = %v, want error containing %q", tc.m, err, tc.want)
		}
	}
	t.Setenv("FIREDRILL_MEMCACHED", "")
	if _, err := ConfigFromMap(nil); err == nil || !strings.Contains(err.Error(), "memcached") {
		t.Errorf("no endpoints: %v", err)
	}
}

func TestSeedConfigFromMap(t *testing.T) {
	t.Setenv("FIREDRILL_MYSQL_ADMIN_DSN", "root:x@tcp(127.0.0.1:1)/db")
	c, err := SeedConfigFromMap(map[string]any{"rows": int64(1000), "seed": int64(5)})
	if err != nil || c.Rows != 1000 || c.Seed != 5 {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := SeedConfigFromMap(map[string]any{"row": 1}); err == nil || !strings.Contains(err.Error(), "option row: unknown") {
		t.Errorf("unknown option: %v", err)
	}
	if _, err := SeedConfigFromMap(map[string]any{"payloadMin": int64(10), "payloadMax": int64(5)}); err == nil {
		t.Error("payloadMax < payloadMin: want error")
	}
	var sb strings.Builder
	c.Batch = 3
	c.buildInsert(&sb, 1)
	a := sb.String()
	sb.Reset()
	c.buildInsert(&sb, 1)
	if a != sb.String() || !strings.HasPrefix(a, "INSERT INTO cache_records (id, version, ref, payload) VALUES (1,1,"+strconv.FormatUint(RefFor(1), 10)+",'") || strings.Count(a, "),(") != 2 {
		t.Errorf("insert not reproducible or malformed: %.120s", a)
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]error{
		ClassTimeout:            fmt.Errorf("x: %w", context.DeadlineExceeded),
		ClassTooManyConnections: &mysql.MySQLError{Number: 1040, Message: "Too many connections"},
		ClassRefused:            fmt.Errorf("dial: %w", syscall.ECONNREFUSED),
		ClassReset:              fmt.Errorf("read: %w", syscall.ECONNRESET),
		ClassDecode:             &memcache.ProtocolError{Line: "??"},
		ClassShed:               fmt.Errorf("select: %w", errShed),
		ClassBreakerOpen:        fmt.Errorf("get: %w", memcache.ErrBreakerOpen),
		ClassOther:              errors.New("boom"),
	}
	for want, err := range cases {
		if got := Classify(err); got != want {
			t.Errorf("Classify(%v) = %s, want %s", err, got, want)
		}
	}
	if Classify(io.ErrUnexpectedEOF) != ClassReset || Classify(nil) != "" {
		t.Error("EOF should be reset, nil empty")
	}
	if Classify(&mysql.MySQLError{Number: 1969}) != ClassTimeout {
		t.Error("max_statement_time should be timeout")
	}
}

// engineWith is an engine with the protections of opts, for tests of
// hooks that need no server.
func engineWith(t *testing.T, opts map[string]any) *Engine {
	t.Helper()
	p := NewProtections()
	if err := p.Apply(opts); err != nil {
		t.Fatal(err)
	}
	e := &Engine{cfg: Config{TTL: 10 * time.Second}, stats: newStats(1)}
	e.prot.Store(&p)
	return e
}

func TestTTLJitterOnlyShortensAndSpreads(t *testing.T) {
	w := &worker{e: engineWith(t, nil), rng: rand.New(rand.NewPCG(1, 1))}
	if _, ttl := w.encodeEntry(format.Legacy, row{}, 0); ttl != 10 {
		t.Errorf("no jitter: ttl %v s", ttl)
	}
	w.e = engineWith(t, map[string]any{"ttlJitter": 0.5})
	lo, hi := 100, 0
	for i := 0; i < 1000; i++ {
		_, ttl := w.encodeEntry(format.Legacy, row{}, 0)
		lo, hi = min(lo, ttl), max(hi, ttl)
	}
	if lo < 5 || hi > 10 || hi-lo < 4 {
		t.Errorf("jittered TTLs in [%v, %v] s, want spread over [5, 10]", lo, hi)
	}
	// With a grace period for stale reads the stored TTL keeps it whole.
	w.e = engineWith(t, map[string]any{"ttlJitter": 0.5, "staleWhileRevalidate": "30s"})
	for i := 0; i < 100; i++ {
		b, ttl := w.encodeEntry(format.Legacy, row{}, 0)
		ent, err := format.Reader{Version: format.Legacy}.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		logical := time.Until(time.UnixMilli(ent.ExpiresAt)).Seconds()
		if d := float64(ttl) - logical; d < 29 || d > 31.5 {
			t.Fatalf("stored %d s, logical %.1f s: the grace is %.1f s, want 30", ttl, logical, d)
		}
	}
}

func TestXFetchProbabilityRisesNearExpiry(t *testing.T) {
	w := &worker{rng: rand.New(rand.NewPCG(1, 1))}
	x := &xfetch{On: true, Beta: 1}
	now := time.UnixMilli(1_000_000)
	frac := func(left time.Duration) float64 {
		n := 0
		for i := 0; i < 10000; i++ {
			if x.onHit(w, format.Entry{ExpiresAt: now.Add(left).UnixMilli(), FillMillis: 100}, now, false) == refreshEarly {
				n++
			}
		}
		return float64(n) / 10000
	}
	far, near := frac(time.Second), frac(50*time.Millisecond)
	// P(refresh) = exp(-left/(delta*beta)): e^-10 far, e^-0.5 near
	if far > 0.001 || near < 0.55 || near > 0.67 {
		t.Errorf("xfetch refresh probability far=%.4f near=%.4f", far, near)
	}
	if x.onHit(w, format.Entry{ExpiresAt: now.UnixMilli() - 1, FillMillis: 1}, now, true) != treatAsMiss {
		t.Error("an expired entry is a miss")
	}
}

func TestDBLimitFailsFast(t *testing.T) {
	d := &dbLimit{Limit: 2}
	p := &process{}
	release := make(chan struct{})
	held := make(chan error, 2)
	for range 2 {
		go func() { held <- d.db(nil, p, func() error { <-release; return nil }) }()
	}
	for p.busy.Load() != 2 {
		time.Sleep(time.Millisecond)
	}
	if err := d.db(nil, p, func() error { return nil }); !errors.Is(err, errShed) {
		t.Errorf("a third query while two run: %v, want shed", err)
	}
	close(release)
	<-held
	<-held
	if err := d.db(nil, p, func() error { return nil }); err != nil || p.busy.Load() != 0 {
		t.Errorf("after they finished: %v, %d busy", err, p.busy.Load())
	}
}

func TestHotSetIDsAreTopRanks(t *testing.T) {
	ids := HotSetIDs(3, 5_000_000_000)
	if len(ids) != 3 || ids[0] == ids[1] || ids[0] >= 5_000_000_000 {
		t.Errorf("hot set ids %v", ids)
	}
}

func TestHotSetReadOnlyKeepsWritesOffTheHotSet(t *testing.T) {
	t.Setenv("FIREDRILL_MEMCACHED", "127.0.0.1:1")
	t.Setenv("FIREDRILL_MEMCACHED_DIRECT", "")
	hot := map[uint64]bool{}
	for _, id := range HotSetIDs(20, 20000) {
		hot[id] = true
	}
	count := func(readOnly bool) (hotWrites, writes int) {
		c, err := ConfigFromMap(map[string]any{"dsn": "u@tcp(127.0.0.1:1)/db", "keys": int64(20000), "rows": int64(20000),
			"hotSet": int64(20), "writeFraction": 0.5, "hotSetReadOnly": readOnly})
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 20000 {
			if o := e.generate(rng, uint64(i), time.Time{}); o.kind == opWrite {
				writes++
				if hot[o.id] {
					hotWrites++
				}
			}
		}
		return hotWrites, writes
	}
	// Zipf 0.99 over 20,000 records puts about a third of the writes on
	// the top 20.
	if h, w := count(false); w < 9000 || h < w/5 {
		t.Errorf("writes as reads: %d of %d writes on the hot set, want about a third", h, w)
	}
	if h, w := count(true); w < 9000 || h != 0 {
		t.Errorf("hotSetReadOnly: %d of %d writes on the hot set, want none", h, w)
	}
	if _, err := ConfigFromMap(map[string]any{"keys": int64(20), "rows": int64(20), "hotSet": int64(20), "hotSetReadOnly": true}); err == nil ||
		!strings.Contains(err.Error(), "option hotSetReadOnly") {
		t.Errorf("hotSetReadOnly over the whole keyspace: %v, want an error naming the option", err)
	}
}

func TestStagesRampAndDuration(t *testing.T) {
	t.Setenv("FIREDRILL_MEMCACHED", "127.0.0.1:1")
	t.Setenv("FIREDRILL_MEMCACHED_DIRECT", "")
	c, err := ConfigFromMap(map[string]any{"rate": int64(100), "stages": []any{
		map[string]any{"duration": "10s", "target": int64(1100)},
		map[string]any{"duration": float64(5000), "target": int64(1100)},
		map[string]any{"duration": "5s", "target": int64(0)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Duration != 20*time.Second {
		t.Errorf("duration without an explicit one = %v, want the stages' 20s", c.Duration)
	}
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{{0, 100}, {5 * time.Second, 600}, {10 * time.Second, 1100}, {14 * time.Second, 1100}, {17500 * time.Millisecond, 550}, {30 * time.Second, 0}} {
		if got := rateAt(c.Rate, c.Stages, tc.at); got != tc.want {
			t.Errorf("rate at %v = %v, want %v", tc.at, got, tc.want)
		}
	}
	c, err = ConfigFromMap(map[string]any{"duration": "3s", "stages": []any{map[string]any{"duration": "10s", "target": int64(5)}}})
	if err != nil || c.Duration != 3*time.Second {
		t.Errorf("an explicit duration wins over the stages: %v %v", c.Duration, err)
	}
}

func TestRefForIsOneToOneOverTheSeededIDs(t *testing.T) {
	seen := make(map[uint64]uint64, 200000)
	for id := uint64(1); id <= 200000; id++ {
		r := RefFor(id)
		if prev, dup := seen[r]; dup {
			t.Fatalf("ref %d for ids %d and %d", r, prev, id)
		}
		seen[r] = id
	}
	// neighbours are far apart in the index, so it is not the primary key
	if d := int64(RefFor(2) - RefFor(1)); d > -1<<40 && d < 1<<40 {
		t.Errorf("refs of ids 1 and 2 are only %d apart", d)
	}
}

func TestErrorsCarryTheOperationTag(t *testing.T) {
	s := newStats(1)
	s.errorClass(opFetch, ClassTimeout)
	s.errorClass(opMulti, ClassTimeout)
	s.errorClass(opLookup, ClassTimeout)
	s.errorClass(opWrite, ClassReset)
	s.errorClass(opRequest, ClassTimeout)
	s.errorClass(opRequest, ClassBreakerOpen)
	got := map[string]float64{}
	for _, smp := range s.collect(time.Now(), []string{"a"}, 1, 0) {
		if smp.Metric == MetricErrors {
			got[smp.Tags["op"]+"/"+smp.Tags["class"]] += smp.Value
		}
	}
	want := map[string]float64{"fetch/timeout": 2, "lookup/timeout": 1, "write/reset": 1, "request/timeout": 1, "request/breaker_open": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("errors by op/class = %v, want %v", got, want)
	}
	if s.errTotals[ClassTimeout] != 4 || s.opErrTotals[OpFetch] != 2 || s.opErrTotals[OpLookup] != 1 || s.opErrTotals[OpRequest] != 2 {
		t.Errorf("totals: by class %v, by op %v", s.errTotals, s.opErrTotals)
	}
}

// A write is recorded once, into both the database and the write
// histograms; each histogram with samples pushes its own trend.
func TestRecordFeedsEachTrend(t *testing.T) {
	s := newStats(1)
	now := time.Now()
	s.record(0, now, 3*time.Millisecond, hFetch)
	s.record(1, now, 7*time.Millisecond, hDB, hWrite)
	got := map[string]float64{}
	for _, smp := range s.collect(time.Now(), []string{"a"}, 1, 0) {
		if smp.Kind == Trend {
			got[smp.Metric] = smp.Value
		}
	}
	want := map[string]float64{MetricFetchMs: 3, MetricDBQueryMs: 7, MetricWriteMs: 7}
	if len(got) != len(want) {
		t.Fatalf("trends = %v, want %v (no lookup trend without lookups)", got, want)
	}
	for m, v := range want {
		if got[m] < v*0.99 || got[m] > v*1.01 {
			t.Errorf("%s = %v ms, want %v", m, got[m], v)
		}
	}
	if s.tot[hDB].TotalCount() != 1 || s.tot[hWrite].TotalCount() != 1 || s.tot[hLookup].TotalCount() != 0 {
		t.Errorf("run totals: db %d write %d lookup %d", s.tot[hDB].TotalCount(), s.tot[hWrite].TotalCount(), s.tot[hLookup].TotalCount())
	}
}

// Engines that share a seed draw the same keys on stream 0 (the sequence
// a seed always gave, so one generator is reproducible as before) and
// different keys on different streams: N generators offer N shares of the
// fleet's traffic, not one share N times.
func TestStreamsSeparateEnginesThatShareASeed(t *testing.T) {
	t.Setenv("FIREDRILL_MEMCACHED", "127.0.0.1:1")
	t.Setenv("FIREDRILL_MEMCACHED_DIRECT", "")
	keys := func(stream uint64) []uint64 {
		c, err := ConfigFromMap(map[string]any{"dsn": "u@tcp(127.0.0.1:1)/db", "keys": int64(20000), "rows": int64(20000), "seed": int64(7)})
		if err != nil {
			t.Fatal(err)
		}
		c.Stream = stream
		e, err := New(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		rng := e.rand(0x6f70) // the dispatcher's
		out := make([]uint64, 1000)
		for i := range out {
			out[i] = e.generate(rng, uint64(i), time.Time{}).id
		}
		return out
	}
	// stream 0 is the seed's own sequence, as the dispatcher drew it
	// before streams: PCG(seed, 0x6f70)
	c, err := ConfigFromMap(map[string]any{"dsn": "u@tcp(127.0.0.1:1)/db", "keys": int64(20000), "rows": int64(20000), "seed": int64(7)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := rand.New(rand.NewPCG(7, 0x6f70))
	a, b, again := keys(0), keys(0x9b3), keys(0)
	same, first := 0, 0
	for i := range a {
		if a[i] != again[i] {
			t.Fatalf("stream 0 drew %d then %d at arrival %d: want one sequence per seed and stream", a[i], again[i], i)
		}
		if a[i] == e.generate(old, uint64(i), time.Time{}).id {
			first++
		}
		if a[i] == b[i] {
			same++
		}
	}
	if first != len(a) {
		t.Errorf("stream 0 matched the seed's own sequence at %d of %d arrivals, want all", first, len(a))
	}
	// Zipf: the most popular keys coincide now and then by popularity
	// alone, not arrival by arrival
	if same > len(a)/5 {
		t.Errorf("streams 0 and 0x9b3 drew the same key at %d of %d arrivals: want independent sequences", same, len(a))
	}
}
