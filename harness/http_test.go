package harness

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/reports"
)

// An HTTP drill's requests, judged by the second each was sent: 10 s at 10
// requests a second, 20 ms each, then a 5 s fault window in which every
// request takes 2 s and one in five is shed, then 5 s as before.
func httpRun(t *testing.T) (*collector, time.Time) {
	t.Helper()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var lines []map[string]any
	// setup's requests come first and are not traffic
	lines = append(lines, point(httpDurationMetric, t0.Add(-3*time.Second), 5000, map[string]string{"status": "200", "group": "::setup"}))
	lines = append(lines, metricLine(k6DroppedIterations, "counter"))
	for i := range 200 {
		start := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		ms, status, tags := 20.0, "200", map[string]string{"release": "app", "name": "/items/{id}", "url": "http://x/items/7"}
		if i >= 100 && i < 150 {
			ms = 2000
			if i%5 == 0 {
				ms, status = 3, "503"
			}
		}
		tags["status"] = status
		end := start.Add(time.Duration(ms * float64(time.Millisecond)))
		lines = append(lines, point(httpDurationMetric, end, ms, tags))
	}
	lines = append(lines,
		point(faultMetric, t0.Add(10*time.Second), 1, map[string]string{"fault": "timeout", "action": "inject", "target": "memcached-2"}),
		point(faultMetric, t0.Add(15*time.Second), 1, map[string]string{"fault": "timeout", "action": "remove", "target": "memcached-2"}),
		// a timed-out request: no status, k6's error code 1050
		point(httpDurationMetric, t0.Add(19500*time.Millisecond+5*time.Second), 5000, map[string]string{"status": "0", "error_code": "1050"}),
	)
	path := filepath.Join(t.TempDir(), "k6-samples.json.gz")
	samplesFile(t, path, lines)
	c := newCollector(t0.Add(-time.Minute))
	if err := c.readSamples(path); err != nil {
		t.Fatal(err)
	}
	return c, t0
}

func TestHTTPRequestsAreJudgedByTheSecondTheyWereSent(t *testing.T) {
	c, t0 := httpRun(t)
	spec := mustSpec(t, `{"checks": [
		{"name": "fast before", "kind": "precondition", "phase": "before", "expr": "http_p99 <= 25"},
		{"name": "slow in the fault", "kind": "signature", "phase": "timeout", "expr": "http_p99 >= 10 x before + 1000", "incident": "004_c305d8cfd50f32dd.txt:3"},
		{"name": "served", "kind": "steady", "phase": "timeout", "expr": "http_served_ratio >= 0.99"}
	]}`)
	spec.HTTP = true
	res := &reports.Result{Profile: "unprotected", Verdict: reports.Verdict{Expected: reports.Broken}}
	c.fill(res, spec)
	if !c.origin.Equal(t0) {
		t.Errorf("time zero = %s, want the first request's start %s (setup's requests are not traffic)", c.origin, t0)
	}
	ps := c.phases(spec)
	before, _ := findPhase(ps, "before")
	fault, _ := findPhase(ps, "timeout")
	after, _ := findPhase(ps, "after")
	for _, tc := range []struct {
		name string
		sel  map[string]string
		w    span
		want float64
	}{
		{"http_offered", nil, before.w, 100},
		{"http_rate", nil, before.w, 10},
		{"http_p99", nil, before.w, 20},
		{"http_offered", nil, fault.w, 50},
		{"http_served_ratio", nil, fault.w, 0.8},
		{"http_shed_ratio", nil, fault.w, 0.2},
		{"http_shed", nil, fault.w, 10},
		{"http_p50", nil, fault.w, 2000},
		{"http_p50", map[string]string{"class": "shed"}, fault.w, 3},
		{"http_count", map[string]string{"status": "503"}, fault.w, 10},
		{"http_timeout", nil, after.w, 1},
		{"http_max", nil, after.w, 5000},
		{"http_offered", map[string]string{"release": "app"}, after.w, 50},
	} {
		got, ok := c.metric(tc.name, tc.sel, tc.w)
		if !ok || !approx(got, tc.want) {
			t.Errorf("%s%v over %v = %v (%v), want %v", tc.name, tc.sel, tc.w, got, ok, tc.want)
		}
	}
	if res.Verdict.Reached != reports.Broken {
		t.Errorf("verdict %+v, want broken", res.Verdict)
	}
	var sawDropped bool
	for _, ch := range res.Checks {
		if ch.Expr == "dropped_iterations == 0" {
			sawDropped = true
			if ch.Outcome != reports.Pass {
				t.Errorf("dropped iterations: %+v, want a pass (the metric was declared, never counted)", ch)
			}
		}
	}
	if !sawDropped {
		t.Error("no automatic precondition on dropped iterations for an HTTP drill")
	}
	if h, ok := res.Histograms[reports.HistHTTP]; !ok {
		t.Error("no http histogram in the result")
	} else if p, err := h.Percentile(50); err != nil || p < 19000 || p > 21000 {
		t.Errorf("run p50 from the encoded histogram = %v µs (%v), want 20 ms", p, err)
	}
	if v := seriesOf(t, res.Series, reports.SeriesOpRate); float64(v[0]) != 10 {
		t.Errorf("op_rate series starts %v, want 10 requests a second", v[:3])
	}
}

func TestDroppedIterationsMakeAnHTTPRunInvalid(t *testing.T) {
	c, t0 := httpRun(t)
	path := filepath.Join(t.TempDir(), "more.json.gz")
	samplesFile(t, path, []map[string]any{point(k6DroppedIterations, t0.Add(12*time.Second), 3, nil)})
	if err := c.readSamples(path); err != nil {
		t.Fatal(err)
	}
	spec := mustSpec(t, `{"checks": [{"name": "served", "kind": "steady", "phase": "run", "expr": "http_served_ratio >= 0"}]}`)
	spec.HTTP = true
	res := &reports.Result{Profile: "protected", Verdict: reports.Verdict{Expected: reports.Held}}
	c.fill(res, spec)
	if res.Verdict.Reached != reports.Invalid {
		t.Errorf("verdict %+v, want invalid: 3 requests were never sent", res.Verdict)
	}
}
