package harness

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/firedrill-dev/firedrill/traffic"
)

// Requests (calls to the cache tier in sequence) have a latency histogram
// of their own: each phase offers request_p50 and request_p99, a request
// that never finished is slower than any bound, and requests count in
// served_ratio as every other operation does.
func TestRequestLatencyIsJudgedPerPhase(t *testing.T) {
	f := newFixture()
	dir := t.TempDir()
	samplesFile(t, filepath.Join(dir, "s.json.gz"), f.samples)
	ledgerFile(t, filepath.Join(dir, "l.ndjson"), f.buckets)
	// 10 requests due every 100 ms: 60 ms before the toxic, 2 s during it
	// (15 calls of a blackholed tier), and in one bucket of the toxic 5
	// failed past their deadline and 4 never finished.
	rf, err := os.Create(filepath.Join(dir, "r.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(rf)
	for i, b := range f.buckets {
		s := float64(i) / 10 // as the fixture places its buckets
		lat, n := int64(60_000), int64(10)
		counts := map[string]int64{"request.offered": 10}
		if s >= 3 && s < 6 {
			lat = 2_000_000
		}
		if s >= 4 && s < 4.1 {
			n = 6
			counts["request.unfinished"] = 4
			counts["request.failed"] = 5
			counts["request.failed.deadline"] = 5
			counts["request.served"] = 1
		} else {
			counts["request.served"] = 10
		}
		h := hdrhistogram.New(histLowest, histHighest, histDigits)
		for range n {
			_ = h.RecordValue(lat)
		}
		e, _ := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		ts := float64(b.at.UnixMilli()) / 1000
		_ = enc.Encode(traffic.LedgerLine{T: ts, Span: 0.1, Counts: counts})
		_ = enc.Encode(traffic.LedgerLine{T: ts, Span: 0.1, Metric: "request", Unit: "us", Encoded: string(e)})
	}
	rf.Close()
	c := newCollector(f.k6)
	if err := c.readSamples(filepath.Join(dir, "s.json.gz")); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"l.ndjson", "r.ndjson"} {
		if err := c.readLedger(filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	c.finish()
	ps := c.phases(nil)
	before, _ := findPhase(ps, "before")
	during, _ := findPhase(ps, "latency")
	sum := c.summary(before.w)
	if got := float64(sum["request_p50"]); !approx(got, 60) {
		t.Errorf("before: request_p50 = %v ms, want 60", got)
	}
	if got := float64(sum["request_p99"]); !approx(got, 60) {
		t.Errorf("before: request_p99 = %v ms, want 60", got)
	}
	sum = c.summary(during.w)
	if got := float64(sum["request_p50"]); !approx(got, 2000) {
		t.Errorf("latency: request_p50 = %v ms, want 2000", got)
	}
	if got := float64(sum["request_p99"]); !math.IsInf(got, 1) {
		t.Errorf("latency: request_p99 = %v ms, want +Inf (4 requests of 300 never finished)", got)
	}
	// fetches: 298 of 300 served; requests: 291 of 300
	if got := float64(sum["served_ratio"]); !approx(got, (298.0+291)/600) {
		t.Errorf("latency: served_ratio = %v, want %v (requests counted with fetches)", got, (298.0+291)/600)
	}
	if got, ok := c.metric("served_ratio", map[string]string{"op": traffic.OpRequest}, during.w); !ok || !approx(got, 291.0/300) {
		t.Errorf("latency: served_ratio{op=request} = %v (%v), want %v", got, ok, 291.0/300)
	}
	if v, ok := c.metric("request_p99", map[string]string{"op": traffic.OpFetch}, during.w); ok {
		t.Errorf("request_p99{op=fetch} = %v, want no value: the histogram is the requests'", v)
	}
}
