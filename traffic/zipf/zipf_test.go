package zipf

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestZetaApproximation(t *testing.T) {
	// exact sum vs Euler–Maclaurin just above the exact limit
	n := uint64(exactZetaLimit + 12345)
	exact := 0.0
	for i := uint64(1); i <= n; i++ {
		exact += math.Pow(float64(i), -0.99)
	}
	if got := Zeta(n, 0.99); math.Abs(got-exact)/exact > 1e-9 {
		t.Errorf("Zeta(%d) = %.12f, exact %.12f", n, got, exact)
	}
	// YCSB's precomputed zeta for 10^10 items, theta 0.99
	if got := Zeta(10_000_000_000, 0.99); math.Abs(got-26.46902820178302) > 1e-6 {
		t.Errorf("Zeta(1e10) = %.12f, want 26.469028201783", got)
	}
}

// TestRankDistribution checks the sampler against exact Zipf
// probabilities with a chi-square test over the top ranks plus the tail.
func TestRankDistribution(t *testing.T) {
	const n, draws, top = 10000, 400000, 50
	s, err := New(n, 0.99)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	counts := make([]float64, top+1)
	for i := 0; i < draws; i++ {
		k := s.Rank(r)
		if k >= n {
			t.Fatalf("rank %d out of range", k)
		}
		if k < top {
			counts[k]++
		} else {
			counts[top]++
		}
	}
	chi := 0.0
	tail := 1.0
	for k := 0; k < top; k++ {
		p := s.Prob(uint64(k))
		tail -= p
		e := p * draws
		chi += (counts[k] - e) * (counts[k] - e) / e
	}
	e := tail * draws
	chi += (counts[top] - e) * (counts[top] - e) / e
	// 50 degrees of freedom: the p=0.001 critical value is about 86.7; the
	// seed is fixed, so this is deterministic.
	t.Logf("chi-square %.1f", chi)
	if chi > 86.7 {
		t.Errorf("chi-square %.1f over %d cells: distribution too far from Zipf(0.99)", chi, top+1)
	}
	if p0 := counts[0] / draws; math.Abs(p0-s.Prob(0)) > 0.005 {
		t.Errorf("P(rank 0) = %.4f, want %.4f", p0, s.Prob(0))
	}
}

func TestScrambleSpreadsHotIDs(t *testing.T) {
	const n = 5_000_000_000
	seen := map[uint64]bool{}
	for r := uint64(0); r < 1000; r++ {
		id := Scramble(r, n)
		if id >= n {
			t.Fatalf("id %d out of range", id)
		}
		seen[id] = true
	}
	if len(seen) < 999 {
		t.Errorf("top 1000 ranks map to only %d ids", len(seen))
	}
	adjacent := 0
	for r := uint64(0); r < 100; r++ {
		if d := int64(Scramble(r, n)) - int64(Scramble(r+1, n)); d == 1 || d == -1 {
			adjacent++
		}
	}
	if adjacent > 0 {
		t.Errorf("%d hot ids adjacent: not scrambled", adjacent)
	}
}

// TestConstantMemoryHugeKeyspace draws from a 5e9-record keyspace and
// checks the heap does not grow with it.
func TestConstantMemoryHugeKeyspace(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := New(5_000_000_000, 0.99)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var sum uint64
	for i := 0; i < 1_000_000; i++ {
		sum += s.Next(r)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 1<<20 {
		t.Errorf("heap grew %d bytes sampling a 5e9 keyspace", grow)
	}
	_ = sum
}

func TestNewErrors(t *testing.T) {
	for _, th := range []float64{0, 1, 1.2, -0.5, math.NaN()} {
		if _, err := New(10, th); err == nil {
			t.Errorf("theta %v: want error", th)
		}
	}
	if _, err := New(0, 0.9); err == nil {
		t.Error("n=0: want error")
	}
}

func BenchmarkNext(b *testing.B) {
	s, _ := New(5_000_000_000, 0.99)
	r := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < b.N; i++ {
		_ = s.Next(r)
	}
}

// TopShare is the draws' share of the top ranks: all of them for the whole
// range (and past it), 1/Zeta for the first rank, and the sampler's own
// draws agree with it.
func TestTopShare(t *testing.T) {
	if got := TopShare(1000, 1000, 0.99); got != 1 {
		t.Errorf("TopShare(1000 of 1000) = %v, want 1", got)
	}
	if got := TopShare(2000, 1000, 0.99); got != 1 {
		t.Errorf("TopShare(2000 of 1000) = %v, want 1 (no more ranks than n)", got)
	}
	if got, want := TopShare(1, 1000, 0.99), 1/Zeta(1000, 0.99); math.Abs(got-want) > 1e-12 {
		t.Errorf("TopShare(1 of 1000) = %v, want %v", got, want)
	}
	s, err := New(20000, 0.99)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const draws = 200000
	top := 0
	for range draws {
		if s.Rank(r) < 500 {
			top++
		}
	}
	want := TopShare(500, 20000, 0.99)
	if sd := math.Sqrt(want * (1 - want) / draws); math.Abs(float64(top)/draws-want) > 4*sd {
		t.Errorf("draws on the top 500 of 20000: %.4f, want %.4f +- %.4f (4 sigma)", float64(top)/draws, want, 4*sd)
	}
}
