package traffic

import (
	"fmt"
	"math"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/format"
)

// xfetch is probabilistic early refresh (Vattani et al., VLDB 2015): a
// reader refills an entry before it expires with a probability that grows
// as expiry nears, scaled by the entry's last fill time and beta, so one
// reader refills it before the crowd misses.
type xfetch struct {
	On   bool    `opt:"xfetch"`
	Beta float64 `opt:"xfetchBeta"`
}

func init() {
	Register(Spec{
		Name: "xfetch", Doc: "refresh an entry early, with a probability growing as its expiry nears (XFetch)",
		Ops:      []string{KindFetch, KindMulti},
		Counters: []CounterSpec{{MetricEarly, "earlyRefreshes"}},
		New:      func() Protection { return &xfetch{Beta: 1} },
	})
}

func (x *xfetch) Enabled() bool { return x.On }

func (x *xfetch) Validate() error {
	if !(x.Beta > 0) {
		return fmt.Errorf("xfetchBeta: %v must be > 0", x.Beta)
	}
	return nil
}

// onHit is XFetch's test: refresh early when
// now - delta*beta*ln(U) >= expiry.
func (x *xfetch) onHit(w *worker, ent format.Entry, now time.Time, expired bool) hitAction {
	if expired {
		return treatAsMiss
	}
	delta := float64(max(ent.FillMillis, 1))
	u := w.rng.Float64()
	if u == 0 {
		u = math.SmallestNonzeroFloat64
	}
	if float64(now.UnixMilli())-delta*x.Beta*math.Log(u) >= float64(ent.ExpiresAt) {
		return refreshEarly
	}
	return serve
}

var (
	_ Protection = (*xfetch)(nil)
	_ hitHook    = (*xfetch)(nil)
)
