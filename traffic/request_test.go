package traffic

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/memcache"
)

// The tier's options default as incident 004's fleet had them (2 s to
// connect, 2 s a round trip, 15 calls a request) and its servers come from
// the harness's FIREDRILL_TIER.
func TestTierOptionsDefaults(t *testing.T) {
	t.Setenv("FIREDRILL_MEMCACHED", "127.0.0.1:1")
	t.Setenv("FIREDRILL_TIER", "127.0.0.1:7, 127.0.0.1:8")
	c, err := ConfigFromMap(map[string]any{"requestFraction": 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if c.RequestCalls != 15 || c.TierTimeout != 2*time.Second || c.TierConnectTimeout != 2*time.Second ||
		fmt.Sprint(c.TierAddrs) != "[127.0.0.1:7 127.0.0.1:8]" || c.RequestFraction != 0.25 {
		t.Errorf("tier options: calls %d, timeout %v, connect %v, servers %v, share %v",
			c.RequestCalls, c.TierTimeout, c.TierConnectTimeout, c.TierAddrs, c.RequestFraction)
	}
	c, err = ConfigFromMap(map[string]any{"tier": "127.0.0.1:9", "requestCalls": int64(5), "tierTimeout": "300ms", "tierConnectTimeout": int64(100)})
	if err != nil {
		t.Fatal(err)
	}
	if c.RequestCalls != 5 || c.TierTimeout != 300*time.Millisecond || c.TierConnectTimeout != 100*time.Millisecond || fmt.Sprint(c.TierAddrs) != "[127.0.0.1:9]" {
		t.Errorf("tier options given: %d %v %v %v", c.RequestCalls, c.TierTimeout, c.TierConnectTimeout, c.TierAddrs)
	}
	if p := c.Protections.Get("tierFlag").(*tierFlag); p.Enabled() || p.Probe != time.Second {
		t.Errorf("tierFlag defaults: %+v, want off with a 1s probe", p)
	}
	// requests are an operation kind of their own: fetches are the rest
	if got := fmt.Sprint(Mix{RequestFraction: 1}.kinds()); got != "[request]" {
		t.Errorf("kinds of an all-request mix = %s", got)
	}
	if got := fmt.Sprint(Mix{RequestFraction: 0.5}.kinds()); got != "[fetch request]" {
		t.Errorf("kinds of a half-request mix = %s", got)
	}
}

// requestEngine is an engine with a tier at addr (nothing needs to listen:
// the clients dial lazily).
func requestEngine(t *testing.T, m map[string]any) *Engine {
	t.Helper()
	t.Setenv("FIREDRILL_MEMCACHED", "127.0.0.1:1")
	t.Setenv("FIREDRILL_MEMCACHED_DIRECT", "")
	base := map[string]any{"dsn": "u@tcp(127.0.0.1:1)/db", "keys": int64(20000), "rows": int64(20000), "tier": "127.0.0.1:2"}
	for k, v := range m {
		base[k] = v
	}
	c, err := ConfigFromMap(base)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.closeAll)
	return e
}

// At requestFraction 1 every arrival is a request of requestCalls Zipf
// ids; at a share, about that share; and a mix without requests draws
// exactly what it drew before requests existed.
func TestGenerateMakesRequests(t *testing.T) {
	e := requestEngine(t, map[string]any{"requestFraction": 1, "requestCalls": int64(7)})
	rng := rand.New(rand.NewPCG(1, 2))
	distinct := map[uint64]bool{}
	for i := range 1000 {
		o := e.generate(rng, uint64(i), time.Time{})
		if o.kind != opRequest || len(o.ids) != 7 {
			t.Fatalf("arrival %d: kind %d with %d ids, want a request of 7", i, o.kind, len(o.ids))
		}
		for _, id := range o.ids {
			if id >= 20000 {
				t.Fatalf("id %d outside the keyspace", id)
			}
			distinct[id] = true
		}
	}
	if len(distinct) < 500 {
		t.Errorf("%d distinct ids in 7000 draws: not Zipf over 20000 keys", len(distinct))
	}

	e = requestEngine(t, map[string]any{"requestFraction": 0.3, "writeFraction": 0.2})
	n := 0
	for i := range 10000 {
		if e.generate(rng, uint64(i), time.Time{}).kind == opRequest {
			n++
		}
	}
	if n < 2800 || n > 3200 {
		t.Errorf("requestFraction 0.3: %d requests of 10000", n)
	}

	with := requestEngine(t, map[string]any{"writeFraction": 0.2, "lookupFraction": 0.1})
	without := requestEngine(t, map[string]any{"writeFraction": 0.2, "lookupFraction": 0.1, "tier": ""})
	r1, r2 := rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(3, 4))
	for i := range 1000 {
		a, b := with.generate(r1, uint64(i), time.Time{}), without.generate(r2, uint64(i), time.Time{})
		if a.kind != b.kind || a.id != b.id {
			t.Fatalf("arrival %d: %+v with a tier configured, %+v without", i, a, b)
		}
	}
}

// The tier's reads are not the cache's: the warm-up's steady-state draw
// counts only fetches and fetch_multi's keys.
func TestCacheReadsLeaveRequestsOut(t *testing.T) {
	e := requestEngine(t, map[string]any{"rate": int64(1000), "requestFraction": 0.5})
	if got := e.cacheReads(); got != 500 {
		t.Errorf("cache reads = %v a second, want 500 (the fetches only)", got)
	}
}

// A running replay cannot be given requests without tier servers.
func TestSetMixNeedsTheTier(t *testing.T) {
	e := requestEngine(t, map[string]any{"tier": ""})
	err := e.SetMix(Mix{RequestFraction: 0.1})
	if err == nil || !strings.Contains(err.Error(), "set mix: option tier: requestFraction 0.1 needs the tier's servers") {
		t.Errorf("SetMix with requests and no tier = %v", err)
	}
	if e.tier != nil {
		t.Error("a tier client without tier servers")
	}
	e = requestEngine(t, nil)
	if err := e.SetMix(Mix{RequestFraction: 0.1}); err != nil {
		t.Errorf("SetMix with a tier: %v", err)
	}
}

// The flag is turned off by the errors of a tier that cannot be reached,
// not by answers the app could not use, nor by the run ending.
func TestTierDownIsUnreachable(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		err  error
		down bool
	}{
		{nil, false},
		{memcache.ErrCacheMiss, false},
		{fmt.Errorf("tier get k: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("tier get k: %w", timeout), true},
		{fmt.Errorf("tier get k: %w", syscall.ECONNREFUSED), true},
		{fmt.Errorf("tier set k: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("tier get k: %w", syscall.EHOSTUNREACH), true},
		{fmt.Errorf("tier get k: %w", memcache.ErrBreakerOpen), true},
		{fmt.Errorf("tier get k: %w", &memcache.ProtocolError{Line: "x"}), false},
		{fmt.Errorf("tier get k: %w", context.Canceled), false},
	} {
		if got := tierDown(tc.err); got != tc.down {
			t.Errorf("tierDown(%v) = %v, want %v", tc.err, got, tc.down)
		}
	}
	if !tierAnswered(nil) || !tierAnswered(fmt.Errorf("get: %w", memcache.ErrCacheMiss)) || tierAnswered(syscall.ECONNREFUSED) {
		t.Error("a probe's hit and miss are answers, a refused connection is not")
	}
}

// The flag's hook: on while the tier answers; the first unreachable error
// turns it off once for the whole fleet (one count however many calls
// fail at once); while off, calls are skipped, counted, and cost nothing.
func TestTierFlagTurnsOffAndSkips(t *testing.T) {
	e := engineWith(t, map[string]any{"tierFlag": true})
	f := e.prot.Load().Get("tierFlag").(*tierFlag)
	w := &worker{e: e, failClass: -1}
	p := &process{idx: 0}
	calls := 0
	answer := func(err error) func() error { return func() error { calls++; return err } }

	if err := f.tierCall(w, p, answer(nil)); err != nil || calls != 1 || e.tierOff.Load() {
		t.Fatalf("a hit: err %v, calls %d, off %v", err, calls, e.tierOff.Load())
	}
	bad := &memcache.ProtocolError{Line: "garbage"}
	if err := f.tierCall(w, p, answer(bad)); !errors.Is(err, bad) || e.tierOff.Load() {
		t.Fatalf("a bad reply turned the flag off (%v)", err)
	}
	down := fmt.Errorf("tier get k: %w", syscall.ECONNREFUSED)
	if err := f.tierCall(w, p, answer(down)); !errors.Is(err, syscall.ECONNREFUSED) || !e.tierOff.Load() {
		t.Fatalf("a refused connection: err %v, off %v; want the error back and the flag off", err, e.tierOff.Load())
	}
	calls = 0
	for range 5 {
		if err := f.tierCall(w, p, answer(down)); err != nil {
			t.Errorf("a skipped call returned %v", err)
		}
	}
	if calls != 0 {
		t.Errorf("%d calls made while the flag was off", calls)
	}
	got := map[string]float64{}
	for _, s := range e.stats.collect(time.Now(), []string{"a"}, 1, 0) {
		got[s.Metric] += s.Value
	}
	if got[MetricTierFlagOffs] != 1 || got[MetricTierSkipped] != 5 {
		t.Errorf("counters %v, want 1 flag off and 5 skipped", got)
	}
	// The flag is the engine's, not the options': protections changed
	// while the replay runs (a clone) see it off too.
	c := cloneProtection(f).(*tierFlag)
	_ = c.tierCall(w, p, answer(nil))
	if calls != 0 {
		t.Error("a call was made through a copy of the protection while the fleet's flag was off")
	}
}

// A probe of a tier that refuses connections leaves the flag off; the
// probe loop ends when its context does.
func TestTierProbeKeepsTheFlagOffWhileUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: refused
	e := requestEngine(t, map[string]any{"tier": addr, "tierConnectTimeout": "200ms",
		"protections": map[string]any{"tierFlag": true, "tierFlagProbe": "20ms"}})
	e.tierOff.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&tierFlag{}).run(ctx, e)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the probe loop did not end with its context")
	}
	if !e.tierOff.Load() {
		t.Error("a refused probe turned the flag back on")
	}
}

// Requests have a ledger op and a histogram of their own.
func TestLedgerCountsRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.ndjson")
	w, err := openLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	s := newStats(1)
	due := time.Unix(1_700_000_000, 0)
	s.ledger.offer(due, opRequest)
	s.ledger.offer(due, opRequest)
	s.record(0, due, 60*time.Millisecond, hRequest)
	s.ledger.finish(0, due, opRequest, Served, 0, false)
	s.ledger.finish(1, due, opRequest, Unfinished, 0, false)
	trends := map[string]float64{}
	for _, smp := range s.collect(time.Now(), []string{"a"}, 1, 0) {
		if smp.Kind == Trend {
			trends[smp.Metric] = smp.Value
		}
	}
	if err := s.ledger.write(w); err != nil {
		t.Fatal(err)
	}
	w.close()
	counts, hists := readLedger(t, path)
	c := counts[float64(due.Unix())]
	if c["request.offered"] != 2 || c["request.served"] != 1 || c["request.unfinished"] != 1 || c["fetch.offered"] != 0 {
		t.Errorf("bucket counts %v", c)
	}
	if h := hists[float64(due.Unix())]["request"]; h == nil || h.TotalCount() != 1 || h.Max() < 59_000 {
		t.Errorf("request histogram %v", h)
	}
	if v := trends[MetricRequestMs]; v < 59 || v > 61 || len(trends) != 1 {
		t.Errorf("trends %v, want only %s at 60 ms", trends, MetricRequestMs)
	}
}
