package harness

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/firedrill-dev/firedrill/reports"
	"github.com/firedrill-dev/firedrill/traffic"
)

func point(metric string, t time.Time, v float64, tags map[string]string) map[string]any {
	return map[string]any{"type": "Point", "metric": metric, "data": map[string]any{"time": t, "value": v, "tags": tags}}
}

func metricLine(name, typ string) map[string]any {
	return map[string]any{"type": "Metric", "metric": name, "data": map[string]any{"name": name, "type": typ}}
}

func seriesOf(t *testing.T, ss []reports.Series, metric string) []reports.Float {
	t.Helper()
	for _, s := range ss {
		if s.Metric == metric {
			return s.Values
		}
	}
	t.Fatalf("no series %s", metric)
	return nil
}

// samplesFile writes k6 JSON output lines to a .gz file.
func samplesFile(t *testing.T, path string, lines []map[string]any) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	enc := json.NewEncoder(gz)
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			t.Fatal(err)
		}
	}
	gz.Close()
	f.Close()
}

// bucket is what a test puts in one 100 ms ledger bucket.
type bucket struct {
	at      time.Time // a bucket start (a multiple of 100 ms)
	counts  map[string]int64
	fetchUS []int64 // fetch latencies in µs
}

func ledgerFile(t *testing.T, path string, bs []bucket) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, b := range bs {
		ts := float64(b.at.UnixMilli()) / 1000
		if len(b.counts) > 0 {
			enc.Encode(traffic.LedgerLine{T: ts, Span: 0.1, Counts: b.counts})
		}
		if len(b.fetchUS) > 0 {
			h := hdrhistogram.New(histLowest, histHighest, histDigits)
			for _, v := range b.fetchUS {
				h.RecordValue(v)
			}
			e, _ := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
			enc.Encode(traffic.LedgerLine{T: ts, Span: 0.1, Metric: "fetch", Unit: "us", Encoded: string(e)})
		}
	}
}

// fixture is a run: k6 starts at k6, setup takes 2 s (a statement limit
// is set in it), traffic runs from traffic for 10 s at 100 fetches/s, and
// a latency toxic sits on memcached-0 from 3 s to 6 s of traffic. Before the
// toxic fetches take 1 ms, during it 50 ms; one bucket of the window has
// two fetches that never finished; the fetches due in the last 100 ms
// before the toxic took 2 s (they finish inside it).
type fixture struct {
	k6, traffic time.Time
	samples     []map[string]any
	buckets     []bucket
}

func newFixture() *fixture {
	k6 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := &fixture{k6: k6, traffic: k6.Add(2 * time.Second)}
	tr := f.traffic
	at := func(s float64) time.Time { return tr.Add(time.Duration(s * float64(time.Second))) }
	ev := func(s float64, fault, action, target string, marker bool) {
		tags := map[string]string{"fault": fault, "action": action, "target": target, "scenario": "traffic"}
		if marker {
			tags["marker"] = "true"
		}
		f.samples = append(f.samples, point("firedrill_fault", at(s), 1, tags))
	}
	f.samples = append(f.samples, metricLine("cache_fetches", "counter"), metricLine("cache_hits", "counter"),
		metricLine("cache_misses", "counter"), metricLine("db_queries", "counter"), metricLine("db_connections", "gauge"),
		metricLine("firedrill_errors", "counter"), metricLine("firedrill_fault", "counter"), metricLine("cache_fetch_ms", "trend"),
		metricLine("firedrill_recovered", "gauge"))
	ev(-1.5, "statement_limit", "inject", "mysql", true)
	ev(-1, "connection_cap", "inject", "mysql", false) // a fault set up before traffic: a marker
	ev(0, "traffic", "inject", "replay", true)
	ev(3, "latency", "inject", "memcached-0", false)
	ev(4.5, "scale", "inject", "processes=8", true)
	ev(6, "latency", "remove", "memcached-0", false)
	ev(10, "traffic", "remove", "replay", true)
	ev(10.2, "connection_cap", "remove", "mysql", false)
	for i := 0; i < 100; i++ {
		s := float64(i) / 10
		t := at(s + 0.05)
		f.samples = append(f.samples,
			point("cache_fetches", t, 10, map[string]string{"process": "0"}),
			point("cache_hits", t, 9, map[string]string{"process": "0"}),
			point("cache_misses", t, 1, map[string]string{"process": "0"}),
			point("db_queries", t, float64(1+i/10), nil),
			point("db_connections", t, 3, map[string]string{"process": "0"}),
			point("db_connections", t, 4, map[string]string{"process": "1"}),
			point("cache_fetch_ms", t, 1, nil))
		b := bucket{at: at(s), counts: map[string]int64{"fetch.offered": 10}}
		lat := int64(1000)
		switch {
		case s >= 2.9 && s < 3:
			lat = 2_000_000
		case s >= 3 && s < 6:
			lat = 50_000
		}
		n := 10
		if s >= 4 && s < 4.1 {
			n = 8
			b.counts["fetch.unfinished"] = 2
		}
		b.counts["fetch.served"] = int64(n)
		for range n {
			b.fetchUS = append(b.fetchUS, lat)
		}
		f.buckets = append(f.buckets, b)
	}
	f.samples = append(f.samples,
		point("firedrill_errors", at(4.25), 2, map[string]string{"class": "timeout", "op": "fetch"}),
		point("firedrill_recovered", at(9.5), 1, nil))
	return f
}

func (f *fixture) collector(t *testing.T) *collector {
	t.Helper()
	dir := t.TempDir()
	samplesFile(t, filepath.Join(dir, "s.json.gz"), f.samples)
	ledgerFile(t, filepath.Join(dir, "l.ndjson"), f.buckets)
	c := newCollector(f.k6)
	if err := c.readSamples(filepath.Join(dir, "s.json.gz")); err != nil {
		t.Fatal(err)
	}
	if err := c.readLedger(filepath.Join(dir, "l.ndjson")); err != nil {
		t.Fatal(err)
	}
	c.finish()
	return c
}

func approx(a, b float64) bool { return math.Abs(a-b) <= 1e-6+math.Abs(b)*0.002 }

// Time zero is the start of traffic: setup is not in "before", what a
// drill set up front is a marker at 0, and markers never make phases.
func TestTimeRunsFromTheStartOfTraffic(t *testing.T) {
	c := newFixture().collector(t)
	if c.end != 10 {
		t.Errorf("end of traffic at %v s, want 10", c.end)
	}
	want := []string{"statement_limit inject 0 marker", "connection_cap inject 0 marker", "traffic inject 0 marker", "latency inject 3",
		"scale inject 4.5 marker", "latency remove 6", "traffic remove 10 marker", "connection_cap remove 10.2 marker"}
	if len(c.events) != len(want) {
		t.Fatalf("events %+v", c.events)
	}
	for i, e := range c.events {
		got := e.Fault + " " + e.Action + " " + trimFloat(e.At)
		if e.Marker {
			got += " marker"
		}
		if got != want[i] {
			t.Errorf("event %d = %q, want %q", i, got, want[i])
		}
	}
	ps := c.phases(nil)
	var names []string
	for _, p := range ps {
		names = append(names, p.name+" "+trimFloat(p.w.from)+"-"+trimFloat(p.w.to))
	}
	if got := join(names); got != "before 0-3, latency 3-6, after 6-10, run 0-10" {
		t.Errorf("phases: %s", got)
	}
}

func trimFloat(v float64) string { return reports.Float(v).String() }

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// Latency belongs to the phase its operation arrived in; an operation that
// never finished is slower than any bound; counters of the whole run add
// up over its phases.
func TestPhaseStatisticsAreExact(t *testing.T) {
	c := newFixture().collector(t)
	ps := c.phases(nil)
	get := func(phase, metric string, sel map[string]string) float64 {
		t.Helper()
		p, ok := findPhase(ps, phase)
		if !ok {
			t.Fatalf("no phase %s", phase)
		}
		v, ok := c.metric(metric, sel, p.w)
		if !ok {
			t.Fatalf("%s: no %s", phase, metric)
		}
		return v
	}
	cases := []struct {
		phase, metric string
		sel           map[string]string
		want          float64
	}{
		{"before", "offered", nil, 300},
		{"before", "fetch_p50", nil, 1},
		// The fetches due in the last 100 ms before the toxic took 2 s: they
		// count in "before", where they arrived.
		{"before", "fetch_max", nil, 2000},
		{"before", "fetch_p99", nil, 2000},
		{"latency", "fetch_p50", nil, 50},
		{"latency", "fetch_max", nil, math.Inf(1)},
		{"latency", "fetch_p9999", nil, math.Inf(1)},
		{"latency", "unfinished", nil, 2},
		{"latency", "served_ratio", nil, 298.0 / 300},
		{"latency", "errors", map[string]string{"class": "timeout"}, 2},
		{"latency", "errors", map[string]string{"class": "refused"}, 0},
		{"after", "fetch_max", nil, 1},
		{"run", "offered", nil, 1000},
		{"run", "hit_ratio", nil, 0.9},
		{"run", "connections_peak", nil, 7},
		{"before", "db_rate", nil, (10 + 20 + 30) / 3.0},
		{"after", "db_rate_peak", nil, 100},
		{"after", "recovered", nil, 1},
		{"latency", "duration_s", nil, 3},
		{"latency", "offered_rate", nil, 100},
	}
	for _, cs := range cases {
		if got := get(cs.phase, cs.metric, cs.sel); !(approx(got, cs.want) || got == cs.want) {
			t.Errorf("%s %s%v = %v, want %v", cs.phase, cs.metric, cs.sel, got, cs.want)
		}
	}
	var sum float64
	for _, p := range []string{"before", "latency", "after"} {
		sum += get(p, "offered", nil)
	}
	if sum != 1000 {
		t.Errorf("offered over the phases adds up to %v, want 1000", sum)
	}
	if _, ok := c.metric("fetch_p99", nil, span{20, 30}); ok {
		t.Error("a window without operations has a fetch p99; want no data")
	}
}

// A stall (operations offered, none finishing) fails the phase's latency
// checks rather than passing them for want of data, and a phase with no
// operations at all has no latency to pass a check with.
func TestAStallFailsLatencyChecks(t *testing.T) {
	f := newFixture()
	for i := range f.buckets {
		s := f.buckets[i].at.Sub(f.traffic).Seconds()
		if s >= 3 && s < 6 {
			f.buckets[i].fetchUS = nil
			f.buckets[i].counts = map[string]int64{"fetch.offered": 10, "fetch.unsent": 10}
		}
	}
	c := f.collector(t)
	spec := mustSpec(t, `{"checks":[
		{"name":"fast","kind":"steady","phase":"latency","expr":"fetch_p99 <= 2 x before + 5"},
		{"name":"fast in an empty window","kind":"steady","phase":"gap","expr":"fetch_p50 <= 1000"}],
		"windows":[{"name":"gap","from":20,"to":30}]}`)
	checks := c.judge(spec, "default", c.phases(spec))
	byName := map[string]reports.Check{}
	for _, ch := range checks {
		byName[ch.Name] = ch
	}
	if ch := byName["fast"]; ch.Outcome != reports.Fail || ch.Observed == nil || !math.IsInf(float64(*ch.Observed), 1) {
		t.Errorf("stalled phase: %+v, want a fail observing +Inf", ch)
	}
	if ch := byName["fast in an empty window"]; ch.Outcome != reports.Fail || ch.Observed != nil {
		t.Errorf("window outside the run: %+v, want a fail with no data", ch)
	}
	if ch := byName["phase gap took place"]; ch.Outcome != reports.Fail || ch.Kind != reports.Precondition {
		t.Errorf("a window that never took place must be a failed precondition: %+v", ch)
	}
}

func mustSpec(t *testing.T, js string) *Spec {
	t.Helper()
	d := Drill{Name: "d", Profiles: []string{"default"}, Expect: map[string]string{"default": reports.Held}}
	s, err := ParseSpec(d, []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadThresholdsBothForms(t *testing.T) {
	path := filepath.Join(t.TempDir(), "summary.json")
	os.WriteFile(path, []byte(`{"metrics":{"b":{"count":7,"thresholds":{"count>0":false}},"a":{"thresholds":{"p(99)<5":true,"max<9":{"ok":true}}}}}`), 0o644)
	ths, err := readThresholds(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []reports.Threshold{{Metric: "a", Expression: "max<9", OK: true}, {Metric: "a", Expression: "p(99)<5", OK: false}, {Metric: "b", Expression: "count>0", OK: true}}
	if len(ths) != 3 {
		t.Fatalf("thresholds = %+v", ths)
	}
	if ths[2].Value == nil || *ths[2].Value != 7 {
		t.Errorf("count>0 judged %v, want 7", ths[2].Value)
	}
	for i := range want {
		ths[i].Value = nil
		if ths[i] != want[i] {
			t.Errorf("threshold %d = %+v, want %+v", i, ths[i], want[i])
		}
	}
}

// A drill's own windows count from a phase's end (after) or start (of),
// and are cut at the end of traffic; a warm-up comes off "before" and
// "run".
func TestDeclaredWindows(t *testing.T) {
	c := newFixture().collector(t)
	spec := mustSpec(t, `{"warmup": 1, "checks":[{"name":"h","kind":"steady","phase":"run","expr":"offered > 0"}],
		"windows":[{"name":"recovery","after":"latency","from":1,"to":3},{"name":"early","of":"latency","from":0,"to":1},
		{"name":"tail","from":8,"to":20}]}`)
	var got []string
	for _, p := range c.phases(spec) {
		got = append(got, p.name+" "+trimFloat(p.w.from)+"-"+trimFloat(p.w.to))
	}
	want := "warmup 0-1, before 1-3, latency 3-6, after 6-10, recovery 7-9, early 3-4, tail 8-10, run 1-10"
	if join(got) != want {
		t.Errorf("phases:\n got %s\nwant %s", join(got), want)
	}
}

// The busiest second is any second of the phase, not a clock second: a
// burst of fills that straddles a second's end counts whole.
func TestBusiestSecondSlidesOverTicks(t *testing.T) {
	f := newFixture()
	tr := f.traffic
	// 60 queries in the last tick of second 7 and 60 in the first of 8:
	// whole seconds read 80 + 60 and 90 + 60 at most
	for _, s := range []float64{7.95, 8.05} {
		f.samples = append(f.samples, point("db_queries", tr.Add(time.Duration(s*float64(time.Second))), 60, nil))
	}
	// setup's queries, before time zero, are no second of "before"
	f.samples = append(f.samples, point("db_queries", tr.Add(-time.Second), 500, nil))
	c := f.collector(t)
	p, ok := findPhase(c.phases(nil), "after")
	if !ok {
		t.Fatal("no phase after")
	}
	got, ok := c.metric("db_rate_peak", nil, p.w)
	// base: 1+i/10 per tick; the second from 7.9 s holds one tick at 8,
	// nine at 9 and the whole burst
	if !ok || got != 8+9*9+120 {
		t.Errorf("db_rate_peak = %v (%v), want 209", got, ok)
	}
	p, _ = findPhase(c.phases(nil), "before")
	if got, ok := c.metric("db_rate_peak", nil, p.w); !ok || got != 30 {
		t.Errorf("before: db_rate_peak = %v (%v), want 30 (second 2, ten ticks at 3)", got, ok)
	}
	// the burst is the peak above the phase's median whole second: before
	// holds 10, 20, 30; after, from 6 s, 70, 80+60, 90+60, 100
	if got, ok := c.metric("db_rate_burst", nil, p.w); !ok || got != 30-20 {
		t.Errorf("before: db_rate_burst = %v (%v), want 10", got, ok)
	}
	p, _ = findPhase(c.phases(nil), "after")
	if got, ok := c.metric("db_rate_burst", nil, p.w); !ok || got != 209-(100+140)/2 {
		t.Errorf("after: db_rate_burst = %v (%v), want 89", got, ok)
	}
	// under three whole seconds there is no steady state to measure it from
	p, _ = findPhase(c.phases(nil), "latency")
	if got, ok := c.metric("db_rate_burst", nil, span{p.w.from, p.w.from + 2.5}); ok {
		t.Errorf("2.5 s: db_rate_burst = %v, want no value", got)
	}
}

// A steady state's percentile bound is judged on counts: `p99 <= B` over
// 400 fetches fails only when more than 1% of them and 3 sigma of the
// binomial count's noise (9.97) lie above B, so a few stalls of the host
// do not break it, while a slow tail does; a signature still reads the
// percentile itself.
func TestASteadyPercentileAllowsItsSamplingNoise(t *testing.T) {
	for _, tc := range []struct {
		slow       int
		steadyPass bool
	}{{0, true}, {6, true}, {9, true}, {11, false}, {40, false}} {
		f := newFixture()
		for i := range f.buckets {
			s := f.buckets[i].at.Sub(f.traffic).Seconds()
			// one slow fetch in each of the first tc.slow buckets of the window
			if s >= 6 && i-60 < tc.slow {
				f.buckets[i].fetchUS[0] = 30_000
			}
		}
		c := f.collector(t)
		spec := mustSpec(t, `{"checks":[
			{"name":"fast","kind":"steady","phase":"late","expr":"fetch_p99 <= 2 x calm + 5"},
			{"name":"fast, strictly","kind":"steady","phase":"late","expr":"fetch_p99 < 2 x calm + 5"}],
			"windows":[{"name":"calm","from":0,"to":2.5},{"name":"late","from":6,"to":10}]}`)
		byName := map[string]reports.Check{}
		for _, ch := range c.judge(spec, "default", c.phases(spec)) {
			byName[ch.Name] = ch
		}
		for _, name := range []string{"fast", "fast, strictly"} {
			ch := byName[name]
			if got := ch.Outcome == reports.Pass; got != tc.steadyPass {
				t.Errorf("%d of 400 slow: %q %s (%s), want pass %v", tc.slow, name, ch.Outcome, ch.Note, tc.steadyPass)
			}
			p99 := 1.0
			if tc.slow > 4 {
				p99 = 30
			}
			if ch.Observed == nil || !approx(float64(*ch.Observed), p99) {
				t.Errorf("%d of 400 slow: observed %v, want p99 %v reported as it is", tc.slow, ch.Observed, p99)
			}
			if wantNote := p99 > 7; wantNote != strings.Contains(ch.Note, fmt.Sprintf("%d of 400 above the bound", tc.slow)) {
				t.Errorf("%d of 400 slow: note %q, want the count above the bound only when the p99 is past it", tc.slow, ch.Note)
			}
		}
		if tc.slow != 6 {
			continue
		}
		d := Drill{Name: "d", Profiles: []string{"unprotected"}, Expect: map[string]string{"unprotected": reports.Broken}}
		sig, err := ParseSpec(d, []byte(`{"checks":[{"name":"recovers","kind":"signature","phase":"late","expr":"fetch_p99 <= 2 x calm + 5","incident":"004_c305d8cfd50f32dd.txt:4"}],
			"windows":[{"name":"calm","from":0,"to":2.5},{"name":"late","from":6,"to":10}]}`))
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.judge(sig, "unprotected", c.phases(sig)) {
			if ch.Name == "recovers" && (ch.Outcome != reports.NotObserved || ch.Note != "") {
				t.Errorf("6 of 400 slow: signature %s (%q), want not observed on the p99 itself", ch.Outcome, ch.Note)
			}
		}
	}
}

func TestQuantileAllowance(t *testing.T) {
	if got := quantileAllowance(400, 0.99); !approx(got, 4+3*math.Sqrt(3.96)) {
		t.Errorf("p99 of 400: allowance %v, want %v", got, 4+3*math.Sqrt(3.96))
	}
	if got := quantileAllowance(1000, 0.5); !approx(got, 500+3*math.Sqrt(250)) {
		t.Errorf("p50 of 1000: allowance %v, want %v", got, 500+3*math.Sqrt(250))
	}
}
