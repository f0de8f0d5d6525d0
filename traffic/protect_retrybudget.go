package traffic

import (
	"fmt"
	"time"
)

// retryBudget tames the app's retries of a fill's read (option retries):
// an exponential backoff with jitter before each, and a budget per process
// that caps retries at a fraction of first attempts over a sliding window,
// as gRPC's and Finagle's retry budgets do. Retries without backoff or
// budget are the most common sustaining effect of a metastable failure.
type retryBudget struct {
	Budget  float64       `opt:"retryBudget"`
	Window  time.Duration `opt:"retryBudgetWindow"`
	Backoff time.Duration `opt:"retryBackoff"`
	// Jitter shortens each delay by a uniform random fraction in
	// [0, Jitter): 1 (true) is "full jitter".
	Jitter jitter `opt:"retryJitter"`
}

func init() {
	Register(Spec{
		Name: "retryBudget", Doc: "retries at most this many per first attempt per process (sliding window), after an exponential backoff with jitter",
		Ops:      []string{KindFetch, KindMulti},
		Counters: []CounterSpec{{MetricRetriesDenied, "retriesDenied"}},
		New:      func() Protection { return &retryBudget{Window: 10 * time.Second} },
	})
}

// Enabled: a budget, a backoff or a jitter alone each change the retries.
func (r *retryBudget) Enabled() bool { return r.Budget > 0 || r.Backoff > 0 || r.Jitter > 0 }

func (r *retryBudget) Validate() error {
	switch {
	case !(r.Budget >= 0) || r.Budget > 100:
		return fmt.Errorf("retryBudget: %v must be in [0, 100] retries per first attempt (0 is unlimited)", r.Budget)
	case r.Window < 100*time.Millisecond || r.Window > 10*time.Minute:
		return fmt.Errorf("retryBudgetWindow: %v must be in [100ms, 10m]", r.Window)
	case r.Backoff < 0 || r.Backoff > maxRetryBackoff:
		return fmt.Errorf("retryBackoff: %v must be in [0, %v]", r.Backoff, maxRetryBackoff)
	case !(r.Jitter >= 0 && r.Jitter <= 1):
		return fmt.Errorf("retryJitter: %v must be a boolean or a fraction in [0, 1]", float64(r.Jitter))
	}
	return nil
}

func (r *retryBudget) newProcess(p *process, now time.Time) {
	if r.Budget > 0 {
		p.budget = newBudgetWindow(r.Budget, r.Window, now)
	}
}

func (r *retryBudget) attempt(p *process, now time.Time) {
	if p.budget != nil {
		p.budget.deposit(now)
	}
}

func (r *retryBudget) mayRetry(w *worker, p *process, n int, now time.Time) (time.Duration, bool) {
	if p.budget != nil && !p.budget.withdraw(now) {
		w.counter(p, MetricRetriesDenied, 1)
		return 0, false
	}
	return retryDelay(r.Backoff, n, float64(r.Jitter), w.rng), true
}

var (
	_ Protection  = (*retryBudget)(nil)
	_ retryHook   = (*retryBudget)(nil)
	_ processHook = (*retryBudget)(nil)
)
