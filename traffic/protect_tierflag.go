package traffic

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/memcache"
)

// MetricTierFlagOffs counts the times the tier's feature flag turned off;
// MetricTierSkipped the tier calls requests skipped while it was off.
const (
	MetricTierFlagOffs = "cache_tier_flag_offs"
	MetricTierSkipped  = "cache_tier_skipped"
)

// tierFlag is the feature flag a fleet puts in front of a new cache tier
// (incident 004): the first tier call that fails as an unreachable server
// fails (a timeout, a refused or reset connection, an open breaker) turns
// it off for the whole fleet, and requests then skip their tier calls, so
// they stay as fast as they were before the tier existed. A probe asks
// the tier once every tierFlagProbe while the flag is off, and turns it
// back on when the tier answers (a hit or a miss).
type tierFlag struct {
	On    bool          `opt:"tierFlag"`
	Probe time.Duration `opt:"tierFlagProbe"`
}

func init() {
	Register(Spec{
		Name: "tierFlag", Doc: "a fleet-wide feature flag in front of the cache tier: a call that finds the tier unreachable turns it off, requests then skip the tier, and a probe turns it back on when the tier answers",
		Ops:      []string{KindRequest},
		Counters: []CounterSpec{{MetricTierFlagOffs, "tierFlagOffs"}, {MetricTierSkipped, "tierSkipped"}},
		New:      func() Protection { return &tierFlag{Probe: time.Second} },
	})
}

func (f *tierFlag) Enabled() bool { return f.On }

func (f *tierFlag) Validate() error {
	if f.Probe < 10*time.Millisecond || f.Probe > time.Minute {
		return fmt.Errorf("tierFlagProbe: %v must be in [10ms, 1m]", f.Probe)
	}
	return nil
}

func (f *tierFlag) tierCall(w *worker, p *process, next func() error) error {
	e := w.e
	if e.tierOff.Load() {
		w.counter(p, MetricTierSkipped, 1)
		return nil
	}
	err := next()
	// A call the end of the run cut off says nothing of the tier.
	if e.runCtx != nil && e.runCtx.Err() != nil {
		return err
	}
	if tierDown(err) && e.tierOff.CompareAndSwap(false, true) {
		w.counter(p, MetricTierFlagOffs, 1)
	}
	return err
}

// tierDown says whether a tier call's error is the tier being unreachable,
// what the flag is turned off for; an answer the app could not use (a bad
// reply, a miss) is not.
func tierDown(err error) bool {
	if err == nil {
		return false
	}
	switch Classify(err) {
	case ClassTimeout, ClassRefused, ClassReset, ClassBreakerOpen:
		return true
	}
	return errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// tierAnswered says whether a probe's error (nil for a hit) is the tier
// answering.
func tierAnswered(err error) bool { return err == nil || errors.Is(err, memcache.ErrCacheMiss) }

// run probes the tier while the flag is off, every tierFlagProbe as the
// protection's current options say, until ctx is done. It runs whether the
// protection is on or not, so turning it on mid-replay finds it running;
// the flag only matters while the protection is on.
func (*tierFlag) run(ctx context.Context, e *Engine) {
	if e.tier == nil {
		return
	}
	rng := e.rand(0x7469_6572)
	for {
		probe := time.Second
		if f, ok := e.prot.Load().Get("tierFlag").(*tierFlag); ok {
			probe = f.Probe
		}
		if !sleepCtx(ctx, probe) {
			return
		}
		if !e.tierOff.Load() {
			continue
		}
		// a key a request would call, so the probes spread over the
		// tier's servers as requests do
		_, err := e.tier.Get(ctx, e.tierKey(e.zipf.Next(rng)))
		if tierAnswered(err) && ctx.Err() == nil {
			e.tierOff.Store(false)
		}
	}
}

var (
	_ Protection = (*tierFlag)(nil)
	_ tierHook   = (*tierFlag)(nil)
	_ runHook    = (*tierFlag)(nil)
)
