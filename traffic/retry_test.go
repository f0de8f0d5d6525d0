package traffic

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestRetryDelayDoublesCapsAndJitters(t *testing.T) {
	base := 50 * time.Millisecond
	for attempt, want := range map[int]time.Duration{0: 0, 1: base, 2: 2 * base, 3: 4 * base, 30: maxRetryBackoff} {
		if got := retryDelay(base, attempt, 0, nil); got != want {
			t.Errorf("retryDelay(%v, %d, no jitter) = %v, want %v", base, attempt, got, want)
		}
	}
	if got := retryDelay(0, 3, 1, rand.New(rand.NewPCG(1, 2))); got != 0 {
		t.Errorf("no backoff: %v, want 0", got)
	}
	// Jitter only shortens, within its fraction, and spreads the delays;
	// a seeded rng gives the same sequence again.
	for _, j := range []float64{0.5, 1} {
		rng := rand.New(rand.NewPCG(7, 8))
		again := rand.New(rand.NewPCG(7, 8))
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for i := 0; i < 2000; i++ {
			d := retryDelay(base, 2, j, rng)
			if d2 := retryDelay(base, 2, j, again); d2 != d {
				t.Fatalf("jitter %v: same seed gave %v then %v", j, d, d2)
			}
			if d > 2*base || float64(d) < float64(2*base)*(1-j) {
				t.Fatalf("jitter %v: delay %v outside [%v, %v]", j, d, time.Duration(float64(2*base)*(1-j)), 2*base)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if spread := float64(hi-lo) / float64(2*base); spread < 0.9*j {
			t.Errorf("jitter %v: delays span only %.2f of the delay (%v..%v)", j, spread, lo, hi)
		}
	}
}

func TestRetryBudgetAllowsItsShareOverTheWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBudgetWindow(0.1, 10*time.Second, t0)
	if b.withdraw(t0) {
		t.Fatal("a retry allowed before any first attempt")
	}
	for i := 0; i < 100; i++ {
		b.deposit(t0.Add(time.Duration(i) * 10 * time.Millisecond))
	}
	now := t0.Add(time.Second)
	allowed := 0
	for i := 0; i < 50; i++ {
		if b.withdraw(now) {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("100 first attempts at ratio 0.1: %d retries allowed, want 10", allowed)
	}
	// Still inside the window: no more.
	if b.withdraw(t0.Add(9 * time.Second)) {
		t.Error("retry allowed past the budget inside the window")
	}
	// Once the window has slid past every deposit and withdrawal, the
	// budget is empty again, and fills with new first attempts.
	later := t0.Add(25 * time.Second)
	if b.withdraw(later) {
		t.Error("retry allowed with no first attempt in the window")
	}
	for i := 0; i < 20; i++ {
		b.deposit(later)
	}
	first, second, third := b.withdraw(later), b.withdraw(later), b.withdraw(later)
	if !first || !second || third {
		t.Error("20 fresh first attempts at ratio 0.1 should allow exactly 2 retries")
	}
}

func TestRetryBudgetSlides(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newBudgetWindow(1, time.Second, t0) // 10 buckets of 100 ms
	for i := 0; i < 10; i++ {
		b.deposit(t0.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	f, r := b.sums(t0.Add(950 * time.Millisecond))
	if f != 10 || r != 0 {
		t.Fatalf("sums at 0.95 s = %d, %d; want 10, 0", f, r)
	}
	// 0.5 s later the five oldest buckets have left the window.
	if f, _ := b.sums(t0.Add(1450 * time.Millisecond)); f != 5 {
		t.Errorf("sums at 1.45 s: %d first attempts, want 5", f)
	}
}

func TestRetryOptions(t *testing.T) {
	t.Setenv("FIREDRILL_MEMCACHED", "127.0.0.1:1")
	t.Setenv("FIREDRILL_MEMCACHED_DIRECT", "")
	c, err := ConfigFromMap(map[string]any{"retries": int64(3), "rows": int64(1000), "fillWork": int64(500), "protections": map[string]any{
		"retryBackoff": "20ms", "retryJitter": true, "retryBudget": 0.2}})
	if err != nil {
		t.Fatal(err)
	}
	rb := c.Protections.Get("retryBudget").(*retryBudget)
	want := retryBudget{Budget: 0.2, Window: 10 * time.Second, Backoff: 20 * time.Millisecond, Jitter: 1}
	if c.Retries != 3 || *rb != want || c.FillWork != 500 || !rb.Enabled() {
		t.Errorf("retries %d budget %+v fill work %v; want 3, %+v", c.Retries, *rb, c.FillWork, want)
	}
	if c, err := ConfigFromMap(map[string]any{"protections": map[string]any{"retryJitter": 0.3}}); err != nil ||
		c.Protections.Get("retryBudget").(*retryBudget).Jitter != 0.3 {
		t.Errorf("retryJitter 0.3: %v", err)
	}
	if c, err := ConfigFromMap(nil); err != nil || c.Retries != 0 || c.Protections.Get("retryBudget").Enabled() {
		t.Errorf("defaults: retries %d, %v", c.Retries, err)
	}
	for m, msg := range map[string]map[string]any{
		"option retries":                       {"retries": int64(-1)},
		"option retries:":                      {"retries": 1.5},
		"option protections.retryBackoff":      {"protections": map[string]any{"retryBackoff": "-1s"}},
		"option protections.retryJitter":       {"protections": map[string]any{"retryJitter": 1.5}},
		"option protections.retryJitter: must": {"protections": map[string]any{"retryJitter": "yes"}},
		"option protections.retryBudget":       {"protections": map[string]any{"retryBudget": -0.1}},
		"option protections.retryBudgetWindow": {"protections": map[string]any{"retryBudgetWindow": "1ms"}},
		"option fillWork":                      {"rows": int64(1000), "fillWork": int64(64001)},
		"option poolIdleConns":                 {"poolSize": int64(2), "poolIdleConns": int64(3)},
		"option poolIdleConns: -1":             {"poolIdleConns": int64(-1)},
		`option retryBudget: unknown`:          {"retryBudget": 0.1}, // it moved under protections
	} {
		_, err := ConfigFromMap(msg)
		if err == nil || !strings.Contains(err.Error(), m) {
			t.Errorf("ConfigFromMap(%v) = %v, want an error containing %q", msg, err, m)
		}
	}
}

func TestRetryingStopsAtRetriesAndBudget(t *testing.T) {
	e := engineWith(t, nil)
	e.cfg.Retries = 3
	w := &worker{e: e, rng: rand.New(rand.NewPCG(1, 1))}
	p := &process{}
	fail := errors.New("boom")
	calls := 0
	_, err := retrying(context.Background(), w, p, func() (int, error) { calls++; return 0, fail })
	if calls != 4 || !errors.Is(err, fail) || e.stats.retries.Load() != 3 {
		t.Errorf("unlimited: %d calls, err %v, %d retries; want 4 calls, 3 retries", calls, err, e.stats.retries.Load())
	}
	calls = 0
	v, err := retrying(context.Background(), w, p, func() (int, error) {
		calls++
		if calls < 2 {
			return 0, fail
		}
		return 42, nil
	})
	if v != 42 || err != nil || calls != 2 {
		t.Errorf("success on the first retry: %v %v after %d calls", v, err, calls)
	}
	// A budget of 0.5 retries per first attempt: two failing reads give
	// one retry in all.
	e = engineWith(t, map[string]any{"retryBudget": 0.5})
	e.cfg.Retries = 3
	w.e = e
	e.prot.Load().Get("retryBudget").(processHook).newProcess(p, time.Now())
	calls = 0
	for i := 0; i < 2; i++ {
		_, _ = retrying(context.Background(), w, p, func() (int, error) { calls++; return 0, fail })
	}
	denied := e.stats.procs[0].named[e.stats.index[MetricRetriesDenied]].Load()
	if calls != 3 || e.stats.retries.Load() != 1 || denied != 2 {
		t.Errorf("budget 0.5: %d calls, %d retries, %d denied; want 3, 1, 2", calls, e.stats.retries.Load(), denied)
	}
	// Off: one call.
	e.cfg.Retries = 0
	calls = 0
	_, _ = retrying(context.Background(), w, p, func() (int, error) { calls++; return 0, fail })
	if calls != 1 {
		t.Errorf("retries off: %d calls", calls)
	}
}

// A fill's work past the table's rows is read in passes of equal length,
// each its own subquery, so the work asked for is the work done.
func TestFillWorkPastTheTableReadsItInPasses(t *testing.T) {
	t.Setenv("FIREDRILL_MEMCACHED", "127.0.0.1:1")
	t.Setenv("FIREDRILL_MEMCACHED_DIRECT", "")
	for _, tc := range []struct {
		work, passes int
		per          string
	}{
		{500, 1, "w.id <= 500)"},
		{1000, 1, "w.id <= 1000)"},
		{2500, 3, "w2.id <= 834)"},
		{64000, 64, "w63.id <= 1000)"},
	} {
		c, err := ConfigFromMap(map[string]any{"rows": int64(1000), "fillWork": int64(tc.work)})
		if err != nil {
			t.Fatalf("fillWork %d: %v", tc.work, err)
		}
		q := (&Engine{cfg: c}).delayClause()
		if n := strings.Count(q, "SELECT COALESCE(SUM("); n != tc.passes || !strings.Contains(q, tc.per) {
			t.Errorf("fillWork %d: %d subqueries, want %d reading %q: %s", tc.work, n, tc.passes, tc.per, q)
		}
	}
}
