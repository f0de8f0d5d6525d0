package traffic

import (
	"math"
	"math/rand/v2"
	"time"
)

// A Pacer spaces a replay's arrivals, as vegeta's pacers do. The engine's
// open-loop dispatcher asks it when each arrival is due, whatever the
// latency; an arrival that cannot start on time starts late and counts as
// late (from its due time), never skipped.
type Pacer interface {
	// Due returns when arrival n (counted from 0) is due, as an offset
	// from the pacer's start, or false when no arrival is ever due from
	// there on (the rate is and stays 0). The dispatcher calls it with n =
	// 0, 1, 2, ... in order, so a pacer may keep state.
	Due(n uint64) (time.Duration, bool)
	// Rate is the arrival rate, per second, at offset t.
	Rate(t time.Duration) float64
}

// Compile-time checks that every pacer is one.
var (
	_ Pacer = ConstantPacer{}
	_ Pacer = (*PoissonPacer)(nil)
	_ Pacer = (*StagedPacer)(nil)
)

// ConstantPacer spaces arrivals evenly at Freq per second. Due times are
// computed from the start, not accumulated, so rounding cannot drift and
// Freq x d arrivals are never exceeded in d.
type ConstantPacer struct {
	Freq float64
}

// Due is n/Freq.
func (p ConstantPacer) Due(n uint64) (time.Duration, bool) {
	if !(p.Freq > 0) {
		return 0, false
	}
	return time.Duration(float64(n) / p.Freq * float64(time.Second)), true
}

// Rate is Freq.
func (p ConstantPacer) Rate(time.Duration) float64 { return max(p.Freq, 0) }

// PoissonPacer makes arrivals a Poisson process of rate Freq: independent
// exponential gaps, as in the open-loop load of the metastability studies.
type PoissonPacer struct {
	Freq float64
	Rng  *rand.Rand
	at   time.Duration
}

// NewPoissonPacer returns a Poisson pacer drawing its gaps from rng.
func NewPoissonPacer(freq float64, rng *rand.Rand) *PoissonPacer {
	return &PoissonPacer{Freq: freq, Rng: rng}
}

// Due is the previous arrival's time plus an exponential gap (0 for the
// first arrival).
func (p *PoissonPacer) Due(n uint64) (time.Duration, bool) {
	if !(p.Freq > 0) {
		return 0, false
	}
	if n > 0 {
		p.at += time.Duration(p.Rng.ExpFloat64() / p.Freq * float64(time.Second))
	}
	return p.at, true
}

// Rate is Freq.
func (p *PoissonPacer) Rate(time.Duration) float64 { return max(p.Freq, 0) }

// StagedPacer ramps the rate linearly from Start through each stage's
// Target over its Duration, as k6's ramping-arrival-rate does, then holds
// the last target. Arrival n is due when the ramp's cumulative rate
// reaches n, solved exactly per stage; with Rng set the arrivals are
// instead a Poisson process of that varying rate (exponential increments
// of the cumulative rate).
type StagedPacer struct {
	Start  float64
	Stages []Stage
	Rng    *rand.Rand
	x      float64 // the cumulative rate of the last arrival (Poisson)
}

// Due solves for the time at which the cumulative rate reaches arrival n's.
func (p *StagedPacer) Due(n uint64) (time.Duration, bool) {
	target := float64(n)
	if p.Rng != nil {
		if n > 0 {
			p.x += p.Rng.ExpFloat64()
		}
		target = p.x
	}
	var t time.Duration
	from := p.Start
	for _, s := range p.Stages {
		d := s.Duration.Seconds()
		// arrivals in this stage: the area under the ramp from `from` to Target
		area := (from + s.Target) / 2 * d
		if target < area || (target == area && area > 0) {
			return t + rampTime(from, s.Target, d, target), true
		}
		target -= area
		t += s.Duration
		from = s.Target
	}
	if !(from > 0) {
		return 0, false
	}
	return t + time.Duration(target/from*float64(time.Second)), true
}

// rampTime is when, into a stage ramping from a to b per second over d
// seconds, the cumulative rate reaches m: a t + (b-a) t²/(2d) = m.
func rampTime(a, b, d, m float64) time.Duration {
	var t float64
	k := (b - a) / d
	if math.Abs(k) < 1e-12 {
		t = m / a
	} else {
		t = (-a + math.Sqrt(max(a*a+2*k*m, 0))) / k
	}
	return time.Duration(t * float64(time.Second))
}

// Rate is the ramp's rate at t.
func (p *StagedPacer) Rate(t time.Duration) float64 { return rateAt(p.Start, p.Stages, t) }

// newPacer is the pacer of a replay's options.
func newPacer(c *Config, rng *rand.Rand) Pacer {
	switch {
	case len(c.Stages) > 0 && c.Arrivals == "poisson":
		return &StagedPacer{Start: c.Rate, Stages: c.Stages, Rng: rng}
	case len(c.Stages) > 0:
		return &StagedPacer{Start: c.Rate, Stages: c.Stages}
	case c.Arrivals == "poisson":
		return NewPoissonPacer(c.Rate, rng)
	}
	return ConstantPacer{Freq: c.Rate}
}
