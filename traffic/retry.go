package traffic

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// RetryPolicy is the app's retry layer around the database reads of a fill
// (load and loadMany), as an ORM's or a client library's retry on a failed
// query. Retries without backoff or budget are the most common sustaining
// effect of a metastable failure: every failed read comes back as more
// reads. The zero value is off.
type RetryPolicy struct {
	// Retries is the maximum number of extra attempts per read (default 0:
	// off).
	Retries int
	// Backoff is the delay before the first retry; each further retry
	// doubles it, up to maxRetryBackoff (default 0: retry at once).
	Backoff time.Duration
	// Jitter shortens each delay by a uniform random fraction in
	// [0, Jitter): 1 (option retryJitter: true) is "full jitter", a delay
	// uniform in [0, d) (default 0: none).
	Jitter float64
	// Budget caps retries at this fraction of first attempts over the last
	// BudgetWindow, per process, as gRPC's and Finagle's retry budgets do: a
	// retry over the budget is not made and the read fails (default 0:
	// unlimited).
	Budget float64
	// BudgetWindow is the budget's sliding window (default 10 s).
	BudgetWindow time.Duration
}

// maxRetryBackoff caps the exponential backoff.
const maxRetryBackoff = 10 * time.Second

func (r *RetryPolicy) validate() error {
	switch {
	case r.Retries < 0 || r.Retries > 100:
		return fmt.Errorf("option retries: %d must be in [0, 100] (0 is off)", r.Retries)
	case r.Backoff < 0 || r.Backoff > maxRetryBackoff:
		return fmt.Errorf("option retryBackoff: %v must be in [0, %v]", r.Backoff, maxRetryBackoff)
	case !(r.Jitter >= 0 && r.Jitter <= 1):
		return fmt.Errorf("option retryJitter: %v must be a boolean or a fraction in [0, 1]", r.Jitter)
	case !(r.Budget >= 0) || r.Budget > 100:
		return fmt.Errorf("option retryBudget: %v must be in [0, 100] retries per first attempt (0 is unlimited)", r.Budget)
	case r.BudgetWindow < 100*time.Millisecond || r.BudgetWindow > 10*time.Minute:
		return fmt.Errorf("option retryBudgetWindow: %v must be in [100ms, 10m]", r.BudgetWindow)
	}
	return nil
}

// asJitter reads retryJitter: a boolean (true is full jitter, 1) or a
// fraction.
func asJitter(v any) (float64, error) {
	if b, ok := v.(bool); ok {
		if b {
			return 1, nil
		}
		return 0, nil
	}
	f, err := asFloat(v)
	if err != nil {
		return 0, fmt.Errorf("must be a boolean or a number in [0, 1], got %T", v)
	}
	return f, nil
}

// retryDelay is the wait before retry number attempt (1 for the first
// retry): base doubled per earlier retry, capped, then shortened by up to
// jitter of itself with rng.
func retryDelay(base time.Duration, attempt int, jitter float64, rng *rand.Rand) time.Duration {
	if base <= 0 || attempt < 1 {
		return 0
	}
	d := base
	for i := 1; i < attempt && d < maxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, maxRetryBackoff)
	if jitter > 0 && rng != nil {
		d = time.Duration(float64(d) * (1 - jitter*rng.Float64()))
	}
	return d
}

// retryBudget counts first attempts and retries in a sliding window of
// budgetBuckets buckets and allows a retry while retries stay within ratio
// of first attempts. It is safe for concurrent use.
type retryBudget struct {
	mu     sync.Mutex
	ratio  float64
	width  time.Duration // one bucket
	origin time.Time
	slot   [budgetBuckets]int64 // bucket number each slot holds
	first  [budgetBuckets]int64
	retry  [budgetBuckets]int64
}

const budgetBuckets = 10

func newRetryBudget(ratio float64, window time.Duration, origin time.Time) *retryBudget {
	b := &retryBudget{ratio: ratio, width: max(window/budgetBuckets, time.Millisecond), origin: origin}
	for i := range b.slot {
		b.slot[i] = -1
	}
	return b
}

// bucket returns the slot of now's bucket, cleared if it held an older one.
func (b *retryBudget) bucket(now time.Time) int {
	n := int64(now.Sub(b.origin) / b.width)
	if n < 0 {
		n = 0
	}
	i := int(n % budgetBuckets)
	if b.slot[i] != n {
		b.slot[i], b.first[i], b.retry[i] = n, 0, 0
	}
	return i
}

// sums returns first attempts and retries in the window ending at now.
func (b *retryBudget) sums(now time.Time) (first, retry int64) {
	n := int64(now.Sub(b.origin) / b.width)
	for i := range b.slot {
		if s := b.slot[i]; s >= 0 && s > n-budgetBuckets && s <= n {
			first += b.first[i]
			retry += b.retry[i]
		}
	}
	return first, retry
}

// deposit records a first attempt.
func (b *retryBudget) deposit(now time.Time) {
	b.mu.Lock()
	b.first[b.bucket(now)]++
	b.mu.Unlock()
}

// withdraw records a retry and returns true when the window's retries,
// this one included, stay within ratio x first attempts; otherwise it
// records nothing and returns false.
func (b *retryBudget) withdraw(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.bucket(now)
	first, retry := b.sums(now)
	if float64(retry+1) > b.ratio*float64(first) {
		return false
	}
	b.retry[i]++
	return true
}

// retrying runs read, the database part of a fill, and retries it as the
// engine's RetryPolicy says. Only the last attempt's error is returned (and
// so counted in firedrill_errors, once per read); each retry made counts
// in db_retries, each one the budget refused in db_retries_denied. A read
// is not retried once the run is ending.
func retrying[T any](ctx context.Context, w *worker, p *process, read func() (T, error)) (T, error) {
	pol := &w.e.cfg.Retry
	v, err := read()
	if pol.Retries <= 0 {
		return v, err
	}
	if p.retryBudget != nil {
		p.retryBudget.deposit(time.Now())
	}
	for attempt := 1; err != nil && attempt <= pol.Retries; attempt++ {
		if ctx.Err() != nil {
			break
		}
		if p.retryBudget != nil && !p.retryBudget.withdraw(time.Now()) {
			w.e.stats.retriesDenied.Add(1)
			break
		}
		if d := retryDelay(pol.Backoff, attempt, pol.Jitter, w.rng); d > 0 && !sleepCtx(ctx, d) {
			break
		}
		w.e.stats.retries.Add(1)
		v, err = read()
	}
	return v, err
}

// appendRetrySamples drains the retry layer's counters into samples
// stamped t and adds them to the totals; collect calls it under totMu.
func (s *stats) appendRetrySamples(out []Sample, t time.Time) []Sample {
	for _, c := range []struct {
		metric string
		n      *atomic.Int64
	}{{MetricRetries, &s.retries}, {MetricRetriesDenied, &s.retriesDenied}} {
		if v := c.n.Swap(0); v != 0 {
			out = append(out, Sample{Metric: c.metric, Kind: Counter, Time: t, Value: float64(v)})
			s.totals[c.metric] += float64(v)
		}
	}
	return out
}
