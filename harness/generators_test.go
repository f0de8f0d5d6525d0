package harness

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/firedrill-dev/firedrill/reports"
)

func TestSegments(t *testing.T) {
	if got := segmentSequence(1); got != "0,1" {
		t.Errorf("sequence 1: %s", got)
	}
	if got := segmentSequence(3); got != "0,1/3,2/3,1" {
		t.Errorf("sequence 3: %s", got)
	}
	want := []string{"0:1/3", "1/3:2/3", "2/3:1"}
	for i, w := range want {
		if got := segment(i, 3); got != w {
			t.Errorf("segment %d: %s, want %s", i, got, w)
		}
	}
}

// writeGenerator writes one generator's k6 files: samples (with a Metric
// line per metric, as k6's JSON output has), a summary with the drill's
// thresholds, and a ledger with ten 100 ms buckets a second, each bucket
// offering fetchesPerSec/10 fetches, all served, with the second's
// latencies spread over its buckets.
func writeGenerator(t *testing.T, dir, prefix string, start time.Time, gen int, fetchesPerSec int64, latencies [][]int64, withFault bool) GeneratorFiles {
	t.Helper()
	f := GeneratorFiles{
		Samples: filepath.Join(dir, prefix+"k6-samples.json.gz"),
		Summary: filepath.Join(dir, prefix+"k6-summary.json"),
		HDR:     filepath.Join(dir, prefix+"histograms.ndjson"),
	}
	g := map[string]string{"generator": string(rune('0' + gen))}
	lines := []map[string]any{metricLine("cache_fetches", "counter"), metricLine("cache_fetch_ms", "trend"),
		metricLine("firedrill_errors", "counter"), metricLine("db_connections", "gauge"), metricLine("firedrill_fault", "counter")}
	marker := func(s float64, action string) {
		lines = append(lines, point("firedrill_fault", start.Add(time.Duration(s*float64(time.Second))), 1,
			map[string]string{"fault": "traffic", "action": action, "target": "replay", "marker": "true", "generator": g["generator"]}))
	}
	marker(0, "inject")
	var buckets []bucket
	for s := range latencies {
		at := start.Add(time.Duration(s)*time.Second + 300*time.Millisecond)
		lines = append(lines, point("cache_fetches", at, float64(fetchesPerSec), g))
		for _, v := range latencies[s] {
			lines = append(lines, point("cache_fetch_ms", at, float64(v)/1000, g))
		}
		lines = append(lines, point("db_connections", at, 5, g))
		for b := 0; b < 10; b++ {
			bk := bucket{at: start.Add(time.Duration(s)*time.Second + time.Duration(b)*100*time.Millisecond),
				counts: map[string]int64{"fetch.offered": fetchesPerSec / 10, "fetch.served": fetchesPerSec / 10}}
			for i := b; i < len(latencies[s]); i += 10 {
				bk.fetchUS = append(bk.fetchUS, latencies[s][i])
			}
			buckets = append(buckets, bk)
		}
	}
	marker(float64(len(latencies)), "remove")
	lines = append(lines, point("firedrill_errors", start.Add(time.Second), 1, map[string]string{"class": "timeout", "generator": g["generator"]}))
	if withFault {
		lines = append(lines,
			point("firedrill_fault", start.Add(time.Second), 1, map[string]string{"fault": "latency", "action": "inject", "target": "memcached-0", "name": "x"}),
			point("firedrill_fault", start.Add(2*time.Second), 1, map[string]string{"fault": "latency", "action": "remove", "target": "memcached-0", "name": "x"}))
	}
	samplesFile(t, f.Samples, lines)
	sum := map[string]any{"metrics": map[string]any{
		"cache_fetches":                   map[string]any{"count": 0, "thresholds": map[string]bool{"count>500": true}},
		"cache_fetch_ms":                  map[string]any{"thresholds": map[string]bool{"p(99)<50": false}},
		"firedrill_errors":                map[string]any{"count": 0, "thresholds": map[string]bool{"count<2": false}},
		"firedrill_errors{class:timeout}": map[string]any{"thresholds": map[string]bool{"count<1": false}},
		"firedrill_errors{class:refused}": map[string]any{"thresholds": map[string]bool{"count<1": false}},
	}}
	b, _ := json.Marshal(sum)
	os.WriteFile(f.Summary, b, 0o644)
	ledgerFile(t, f.HDR, buckets)
	return f
}

func TestMergeOutputsIsExact(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	const secs = 4
	var all []int64
	lat := func(scale float64) [][]int64 {
		out := make([][]int64, secs)
		for s := range out {
			for i := 0; i < 2000; i++ {
				v := int64(rng.ExpFloat64()*scale) + 50 // microseconds
				out[s] = append(out[s], v)
				all = append(all, v)
			}
		}
		return out
	}
	// Two generators with different latency distributions: their merge must
	// equal the distribution of every sample together, not an average.
	f0 := writeGenerator(t, dir, "g0-", start, 0, 100, lat(800), true)
	f1 := writeGenerator(t, dir, "g1-", start, 1, 150, lat(20000), false)
	d := Drill{Name: "d", Expect: map[string]string{"default": "held"}, Profiles: []string{"default"}}
	// Before the toxic fetches are fast in both generators; during it,
	// generator 1's tail (~90 ms at p99) lands in the merge.
	spec := mustSpec(t, `{"checks":[
		{"name":"served","kind":"steady","phase":"run","expr":"served_ratio >= 1"},
		{"name":"fast","kind":"steady","phase":"latency","expr":"fetch_p99 <= 50"}]}`)
	res, err := MergeOutputs(d, "default", "v1", []GeneratorFiles{f0, f1}, "", spec)
	if err != nil {
		t.Fatal(err)
	}
	// Operations offered per second add up over generators.
	ops := seriesOf(t, res.Series, reports.SeriesOpRate)
	for s := 0; s < secs; s++ {
		if ops[s] != 250 {
			t.Errorf("op rate second %d = %v, want 250", s, ops[s])
		}
	}
	// Gauges of different generators add up.
	if c := seriesOf(t, res.Series, reports.SeriesConnections); c[0] != 10 {
		t.Errorf("connections %v, want 10 (5 per generator)", c[0])
	}
	// Fault events once (only generator 0 injected), beside each
	// generator's traffic markers.
	faults := 0
	for _, e := range res.Events {
		if !e.Marker {
			faults++
		}
	}
	if faults != 2 || len(res.Events) != 6 {
		t.Errorf("events %+v", res.Events)
	}
	// HDR merge: every percentile of the merged whole-run histogram equals
	// the one of a histogram of all samples recorded together.
	ref := hdrhistogram.New(1, 60_000_000, 3)
	for _, v := range all {
		ref.RecordValue(v)
	}
	h, ok := res.Histograms[reports.HistLatency]
	if !ok {
		t.Fatalf("no merged histogram: %v", res.Histograms)
	}
	m, err := h.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if m.TotalCount() != int64(len(all)) {
		t.Fatalf("merged count %d, want %d", m.TotalCount(), len(all))
	}
	for _, q := range []float64{50, 90, 99, 99.9, 100} {
		if a, b := m.ValueAtQuantile(q), ref.ValueAtQuantile(q); a != b {
			t.Errorf("p%v: merged %d, all samples %d", q, a, b)
		}
	}
	// ...and within HDR's precision (3 significant digits) of the exact
	// percentile of the raw samples.
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	exact := all[int(math.Ceil(0.99*float64(len(all))))-1]
	if got := m.ValueAtQuantile(99); math.Abs(float64(got-exact)) > float64(exact)*0.001+1 {
		t.Errorf("p99 %d, exact %d", got, exact)
	}
	// Thresholds judged on the merge: fetches 1000 > 500 (each generator
	// alone: 400 and 600), errors 2 (one each) fail count<2, p99 from all
	// samples, submetric by tag.
	got := map[string]bool{}
	for _, th := range res.Thresholds {
		got[th.Metric+" "+th.Expression] = th.OK
	}
	want := map[string]bool{
		"cache_fetches count>500":                 true,
		"firedrill_errors count<2":                false,
		"firedrill_errors{class:timeout} count<1": false,
		"firedrill_errors{class:refused} count<1": true,
		"cache_fetch_ms p(99)<50":                 false, // generator 1's tail is ~90 ms
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("threshold %s: ok=%v (present %v), want %v", k, g, ok, w)
		}
	}
	// The verdict comes from the checks, judged on the merge: a failed k6
	// threshold does not decide it.
	if res.Verdict.Reached != reports.Broken || res.Verdict.Pass || res.Verdict.Reason != "steady state failed: fast" {
		t.Errorf("verdict %+v, want broken by the steady state \"fast\"", res.Verdict)
	}
	for _, th := range res.Thresholds {
		if th.Metric == "cache_fetches" && (th.Value == nil || *th.Value != 1000) {
			t.Errorf("cache_fetches value %v, want 1000", th.Value)
		}
	}
}

// A merge with the run's sampler file carries the servers' counters:
// series, phase figures and the sampling precondition, on the merge's time.
func TestMergeOutputsReadsTheServers(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	lat := [][]int64{{100}, {100}, {100}, {100}}
	f0 := writeGenerator(t, dir, "g0-", start, 0, 100, lat, false)
	var lines []ServerLine
	lines = append(lines, ServerLine{Type: LineSource, Source: sourceDB, Interval: 1, UserCounts: DBUserCountsUserStatistics})
	for s := -2; s <= 5; s++ {
		lines = append(lines, ServerLine{Type: LineSample, Source: sourceDB, T: start.Add(time.Duration(s)*time.Second + 400*time.Millisecond),
			Counters: map[string]float64{mDBUserSelect: float64(100 + 40*s)}})
	}
	servers := filepath.Join(dir, ServersFile)
	serverFile(t, servers, lines)
	d := Drill{Name: "d", Expect: map[string]string{"default": "held"}, Profiles: []string{"default"}}
	spec := mustSpec(t, `{"checks":[{"name":"selects","kind":"steady","phase":"run","expr":"server_db_user_select_rate >= 39"}]}`)
	res, err := MergeOutputs(d, "default", "v1", []GeneratorFiles{f0}, servers, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sampling == nil || res.Sampling.DBUserCounts != DBUserCountsUserStatistics || res.Sampling.Sources[0].Readings != 4 {
		t.Errorf("sampling %+v", res.Sampling)
	}
	run := res.Phases[len(res.Phases)-1]
	if v := run.Summary["server_db_user_select_rate"]; !approx(float64(v), 40) {
		t.Errorf("run's server SELECT rate %v, want 40", v)
	}
	if res.Verdict.Reached != reports.Held {
		t.Errorf("verdict %+v", res.Verdict)
	}
	if s := seriesOf(t, res.Series, reports.SeriesServerDBUserSelect); len(s) != 4 || s[2] != 40 {
		t.Errorf("series %v", s)
	}
}
