package traffic

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/zipf"
)

// A spread warm starts the cache in its steady state: simulated from the
// warm on, each key refilled on its first read after it expires with a
// jittered TTL, the misses of the first 20 s are those of the steady state
// (the last 200 s of a 600 s simulation), at 100 and at 500 reads per
// second over a Zipf of 200 keys. The warm this replaced (every entry
// present, a TTL uniform in [1 s, ttl] before jitter) starts with too few
// misses at the low rate (a rarely read key expires and waits unnoticed:
// 2.83/s against 3.21/s), and the test shows it; at 500/s it was close.
func TestSteadyWarmStartsInTheSteadyState(t *testing.T) {
	const keys, ttl = 200, 60 * time.Second
	e := engineWith(t, map[string]any{"ttlJitter": 0.5})
	z, err := zipf.New(keys, 0.99)
	if err != nil {
		t.Fatal(err)
	}
	e.zipf = z
	ids := HotSetIDs(keys, keys)
	for _, reads := range []float64{100, 500} {
		var steadyFirst, steadyLast, oldFirst float64
		const reps = 40
		for rep := range reps {
			w := &worker{e: e, rng: rand.New(rand.NewPCG(uint64(rep), 1))}
			st := &steady{reads: reads}
			st.init(w, ttl, ids)
			// left[id]: seconds until the entry expires; <0: absent
			left := map[uint64]float64{}
			old := map[uint64]float64{}
			for _, id := range ids {
				if _, dup := left[id]; dup {
					continue
				}
				l, _, ok := st.draw(w, ttl, id)
				left[id] = -1
				if ok {
					left[id] = l.Seconds()
				}
				lo, _ := w.shapeTTL(time.Duration(1+w.rng.Int64N(60)) * time.Second)
				old[id] = lo.Seconds()
			}
			f, l := simulateMisses(w, reads, ids, left, ttl, 600)
			steadyFirst += f
			steadyLast += l
			f, _ = simulateMisses(w, reads, ids, old, ttl, 600)
			oldFirst += f
		}
		steadyFirst, steadyLast, oldFirst = steadyFirst/reps, steadyLast/reps, oldFirst/reps
		t.Logf("%v reads/s: misses/s first 20 s %.2f (the old warm %.2f), steady %.2f", reads, steadyFirst, oldFirst, steadyLast)
		if math.Abs(steadyFirst/steadyLast-1) > 0.08 {
			t.Errorf("%v reads/s: %.2f misses/s in the first 20 s against %.2f steady, want within 8%%", reads, steadyFirst, steadyLast)
		}
		if reads == 100 && oldFirst/steadyLast > 0.92 {
			t.Errorf("%v reads/s: the old warm's %.2f misses/s is within 8%% of %.2f: want it 8%% short: the test does not tell the two warms apart", reads, oldFirst, steadyLast)
		}
	}
}

// simulateMisses replays Poisson reads over the Zipf for d seconds from a
// cache whose entries expire in left seconds (<0: absent), refilling on a
// miss with a TTL the protections shape, and returns the misses per
// second in the first 20 s and in the last 200 s.
func simulateMisses(w *worker, reads float64, ids []uint64, left map[uint64]float64, ttl time.Duration, d float64) (first, last float64) {
	rng := rand.New(rand.NewPCG(7, uint64(reads)))
	exp := map[uint64]float64{}
	for id, l := range left {
		exp[id] = l
		if l < 0 {
			exp[id] = math.Inf(-1)
		}
	}
	var nFirst, nLast int
	for now := rng.ExpFloat64() / reads; now < d; now += rng.ExpFloat64() / reads {
		id := ids[w.e.zipf.Rank(rng)]
		if exp[id] > now {
			continue
		}
		if now < 20 {
			nFirst++
		} else if now >= d-200 {
			nLast++
		}
		l, _ := w.shapeTTL(ttl)
		exp[id] = now + l.Seconds()
	}
	return float64(nFirst) / 20, float64(nLast) / 200
}
