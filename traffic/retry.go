package traffic

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// maxRetryBackoff caps the exponential backoff.
const maxRetryBackoff = 10 * time.Second

// jitter is retryJitter: a boolean (true is full jitter, 1) or a fraction.
type jitter float64

// UnmarshalOption reads a boolean (true is full jitter) or a fraction.
func (j *jitter) UnmarshalOption(v any) error {
	if b, ok := v.(bool); ok {
		*j = 0
		if b {
			*j = 1
		}
		return nil
	}
	f, err := asFloat(v)
	if err != nil {
		return fmt.Errorf("must be a boolean or a number in [0, 1], got %T", v)
	}
	*j = jitter(f)
	return nil
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

// budgetWindow counts first attempts and retries in a sliding window of
// budgetBuckets buckets and allows a retry while retries stay within ratio
// of first attempts. It is safe for concurrent use.
type budgetWindow struct {
	mu     sync.Mutex
	ratio  float64
	width  time.Duration // one bucket
	origin time.Time
	slot   [budgetBuckets]int64 // bucket number each slot holds
	first  [budgetBuckets]int64
	retry  [budgetBuckets]int64
}

const budgetBuckets = 10

func newBudgetWindow(ratio float64, window time.Duration, origin time.Time) *budgetWindow {
	b := &budgetWindow{ratio: ratio, width: max(window/budgetBuckets, time.Millisecond), origin: origin}
	for i := range b.slot {
		b.slot[i] = -1
	}
	return b
}

// bucket returns the slot of now's bucket, cleared if it held an older one.
func (b *budgetWindow) bucket(now time.Time) int {
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
func (b *budgetWindow) sums(now time.Time) (first, retry int64) {
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
func (b *budgetWindow) deposit(now time.Time) {
	b.mu.Lock()
	b.first[b.bucket(now)]++
	b.mu.Unlock()
}

// withdraw records a retry and returns true when the window's retries,
// this one included, stay within ratio x first attempts; otherwise it
// records nothing and returns false.
func (b *budgetWindow) withdraw(now time.Time) bool {
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

// retrying runs read, the database part of a fill, and retries it up to
// cfg.Retries times (the app's retry layer, as an ORM's), waiting and
// limited as the protections that govern retries say. Only the last
// attempt's error is returned (and so counted in firedrill_errors, once per
// read); each retry made counts in db_retries. A read is not retried once
// the run is ending.
func retrying[T any](ctx context.Context, w *worker, p *process, read func() (T, error)) (T, error) {
	v, err := read()
	n := w.e.cfg.Retries
	if n <= 0 {
		return v, err
	}
	hooks := w.e.prot.Load().retry
	now := time.Now()
	for _, h := range hooks {
		h.attempt(p, now)
	}
	for attempt := 1; err != nil && attempt <= n; attempt++ {
		if ctx.Err() != nil {
			break
		}
		var wait time.Duration
		ok := true
		for _, h := range hooks {
			d, may := h.mayRetry(w, p, attempt, time.Now())
			wait, ok = max(wait, d), ok && may
		}
		if !ok || (wait > 0 && !sleepCtx(ctx, wait)) {
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
	}{{MetricRetries, &s.retries}} {
		if v := c.n.Swap(0); v != 0 {
			out = append(out, Sample{Metric: c.metric, Kind: Counter, Time: t, Value: float64(v)})
			s.totals[c.metric] += float64(v)
		}
	}
	return out
}
