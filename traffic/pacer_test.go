package traffic

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// count is how many arrivals p makes due before d.
func count(p Pacer, d time.Duration) int {
	n := 0
	for {
		off, ok := p.Due(uint64(n))
		if !ok || off >= d {
			return n
		}
		n++
	}
}

func TestConstantPacerIsExact(t *testing.T) {
	p := ConstantPacer{Freq: 300}
	if n := count(p, 10*time.Second); n != 3000 {
		t.Errorf("300/s over 10 s: %d arrivals, want 3000", n)
	}
	want := float64(1_000_000) / 300 * float64(time.Second)
	if off, _ := p.Due(1_000_000); off != time.Duration(want) {
		t.Errorf("arrival 1e6 at %v: due times drift", off)
	}
	if _, ok := (ConstantPacer{}).Due(0); ok {
		t.Error("a rate of 0 makes nothing due")
	}
}

func TestPoissonPacerMeanRate(t *testing.T) {
	p := NewPoissonPacer(1000, rand.New(rand.NewPCG(1, 2)))
	n := count(p, 20*time.Second)
	// 20,000 expected; a Poisson count's standard deviation is sqrt(20,000) = 141
	if math.Abs(float64(n)-20000) > 5*141 {
		t.Errorf("1000/s over 20 s: %d arrivals", n)
	}
	// Gaps vary: not evenly spaced.
	a, _ := p.Due(uint64(n + 1))
	b, _ := p.Due(uint64(n + 2))
	c, _ := p.Due(uint64(n + 3))
	if b-a == c-b {
		t.Error("two equal gaps in a row: not exponential")
	}
}

// The staged pacer makes as many arrivals due as the area under its ramp:
// 100 -> 600/s over 2 s is 700, then 600/s for 1 s, then 0.
func TestStagedPacerFollowsTheRamp(t *testing.T) {
	p := &StagedPacer{Start: 100, Stages: []Stage{{2 * time.Second, 600}, {time.Second, 600}, {time.Second, 0}}}
	for _, c := range []struct {
		d    time.Duration
		want int
	}{{time.Second, 225}, {2 * time.Second, 700}, {3 * time.Second, 1300}, {4 * time.Second, 1600}, {time.Hour, 1600}} {
		if n := count(p, c.d); math.Abs(float64(n-c.want)) > 1 {
			t.Errorf("arrivals before %v: %d, want %d", c.d, n, c.want)
		}
	}
	if r := p.Rate(time.Second); r != 350 {
		t.Errorf("rate at 1 s %v, want 350", r)
	}
	// Held at the last target when it is not 0.
	q := &StagedPacer{Start: 0, Stages: []Stage{{time.Second, 100}}}
	if n := count(q, 3*time.Second); math.Abs(float64(n-250)) > 1 {
		t.Errorf("0 -> 100/s over 1 s, then held: %d arrivals in 3 s, want 250", n)
	}
	// A Poisson ramp keeps the same mean.
	r := &StagedPacer{Start: 100, Stages: []Stage{{2 * time.Second, 600}, {time.Second, 600}}, Rng: rand.New(rand.NewPCG(3, 4))}
	if n := count(r, 3*time.Second); math.Abs(float64(n)-1300) > 5*math.Sqrt(1300) {
		t.Errorf("Poisson ramp: %d arrivals in 3 s, want about 1300", n)
	}
}
