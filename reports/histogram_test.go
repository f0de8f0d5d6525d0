package reports

import (
	"math/rand/v2"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Merged percentiles must equal those of one histogram that saw every
// sample: that is what lets several generators' results merge exactly.
func TestMergeHistogramsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	all := hdrhistogram.New(1, 60_000_000, 3)
	var parts []Histogram
	for g := range 4 {
		// Different ranges per generator, to check the merge widens.
		part := hdrhistogram.New(1, int64(1_000_000*(g+1)), 2+g%2)
		for range 10_000 {
			v := int64(rng.ExpFloat64()*float64(200*(g+1))) + 1
			if err := part.RecordValue(v); err != nil {
				t.Fatal(err)
			}
			all.RecordValue(v)
		}
		h, err := NewHistogram("us", part)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, h)
	}
	m, err := MergeHistograms(parts...)
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.Count()
	if err != nil || n != 40_000 {
		t.Fatalf("merged count = %d, %v; want 40000", n, err)
	}
	got, err := m.Percentiles(50, 90, 99, 99.9, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []float64{50, 90, 99, 99.9, 100} {
		want := float64(all.ValueAtPercentile(p))
		// Two significant digits in some inputs: allow their 1% bucket width.
		if d := got[i] - want; d > want*0.01+1 || d < -want*0.01-1 {
			t.Errorf("p%v = %v, want %v", p, got[i], want)
		}
	}
}

func TestMergeHistogramsErrors(t *testing.T) {
	a, _ := NewHistogram("us", hdrhistogram.New(1, 1000, 3))
	b, _ := NewHistogram("ms", hdrhistogram.New(1, 1000, 3))
	if _, err := MergeHistograms(); err == nil {
		t.Error("merge of nothing: want error")
	}
	if _, err := MergeHistograms(a, b); err == nil {
		t.Error("merge of us and ms: want error")
	}
	if _, err := MergeHistograms(a, Histogram{Unit: "us", Encoded: "not base64!"}); err == nil {
		t.Error("merge of garbage: want error")
	}
}

func TestMergeHistogramMaps(t *testing.T) {
	mk := func(vs ...int64) Histogram {
		h := hdrhistogram.New(1, 1_000_000, 3)
		for _, v := range vs {
			h.RecordValue(v)
		}
		e, _ := NewHistogram("us", h)
		return e
	}
	m, err := MergeHistogramMaps(
		map[string]Histogram{"latency": mk(1, 2, 3), "db": mk(10)},
		map[string]Histogram{"latency": mk(4, 5)},
	)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := m["latency"].Count(); n != 5 {
		t.Errorf("latency count %d, want 5", n)
	}
	if n, _ := m["db"].Count(); n != 1 {
		t.Errorf("db count %d, want 1", n)
	}
	if p, _ := m["latency"].Percentile(100); p != 5 {
		t.Errorf("latency max %v, want 5", p)
	}
}
