package reports

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reports -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the current output; inspect it and run go test ./reports -run %s -update if the change is intended", path, t.Name())
	}
}

// goldenResults are small and varied: a failing verdict, an incomplete run,
// a run with no series at all and one with a never-removed fault.
func goldenResults() []*Result {
	a := fixture("cache-format-flip", "unprotected", 60, 1, 1)
	b := fixture("cache-format-flip", "protected", 60, 2, 1)
	b.Verdict = Verdict{Expected: Held, Reached: Broken, Pass: false, Reason: "threshold db_query_rate max<500 failed"}
	b.Thresholds[0].OK = false
	c := fixture("connection-storm", "unprotected", 40, 3, 1)
	c.Complete = false
	c.IncompleteReason = "interrupted (SIGINT) at 0:40"
	c.Series = nil
	c.Phases = nil
	return []*Result{c, b, a} // out of order on purpose: the report sorts
}

func TestRenderHTMLGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderHTML(&buf, goldenResults()); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.html.golden", buf.Bytes())
}

func TestRenderHTMLStructure(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderHTML(&buf, goldenResults()); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{
		`content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"`,
		`<table class="verdicts">`,
		`INCOMPLETE:</strong> connection-storm · unprotected`,
		`interrupted (SIGINT) at 0:40`,
		`no data`,
		`max&lt;500`,
		`class="fw"`,
		`never removed`,
		`<table class="phases">`,
		`firedrill/mariadb:10.11`,
		// The servers' own counts beside the client's, and how they were read.
		`id="cache-format-flip-unprotected-db-server"`,
		`id="cache-format-flip-unprotected-mc-server"`,
		`id="cache-format-flip-unprotected-cpu"`,
		`>traffic SELECT</text>`,
		`>toxiproxy</text>`,
		`counted by user_statistics`,
		`container:toxiproxy: 57 readings, <span class="fail">2 s missing</span> (first error: docker stats stream ended: EOF)`,
		`<th>server: SELECT /s</th>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Verdicts come before the charts.
	if v, c := strings.Index(html, `id="verdicts"`), strings.Index(html, `<svg`); v < 0 || c < v {
		t.Errorf("verdict table at %d, first chart at %d: verdicts must come first", v, c)
	}
	assertSelfContained(t, html)
}

var externalRef = regexp.MustCompile(`(?i)(src|href|xlink:href|action)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?(https?:)?//|@import`)

// assertSelfContained fails if the page could make any network request.
func assertSelfContained(t *testing.T, html string) {
	t.Helper()
	if m := externalRef.FindString(html); m != "" {
		t.Errorf("report references something outside itself: %q", m)
	}
	if strings.Contains(html, "<script") || strings.Contains(html, "<link") {
		t.Error("report has a script or link element")
	}
	if !strings.Contains(html, `http-equiv="Content-Security-Policy" content="`+CSP+`"`) {
		t.Error("report lacks its Content-Security-Policy")
	}
}

func TestRenderHTMLDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := RenderHTML(&a, fixtureSet(120, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := RenderHTML(&b, fixtureSet(120, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two renders of the same results differ")
	}
}

func TestRenderHTMLNoResults(t *testing.T) {
	if err := RenderHTML(&bytes.Buffer{}, nil); err == nil {
		t.Error("want an error for no results")
	}
}

// A result of schema 1 has no fault phases: its windows come from the
// events, markers left out.
func TestFaultWindows(t *testing.T) {
	ws := faultWindows(&Result{Events: []FaultEvent{
		{At: 10, Fault: "latency", Action: Inject, Target: "mc-0"},
		{At: 12, Fault: "latency", Action: Inject, Target: "mc-1"},
		{At: 15, Fault: "scale", Action: Inject, Target: "processes=8", Marker: true},
		{At: 20, Fault: "latency", Action: Remove, Target: "mc-1"},
		{At: 30, Fault: "latency", Action: Remove, Target: "mc-0"},
		{At: 40, Fault: "partition", Action: Inject, Target: "db"},
		{At: 45, Fault: "partition", Action: Remove, Target: "other"}, // no match
	}}, 100)
	want := []faultWindow{
		{Label: "latency @ mc-0", From: 10, To: 30},
		{Label: "latency @ mc-1", From: 12, To: 20},
		{Label: "partition @ db", From: 40, To: 100, Open: true},
	}
	if len(ws) != len(want) {
		t.Fatalf("got %+v", ws)
	}
	for i := range want {
		if ws[i] != want[i] {
			t.Errorf("window %d = %+v, want %+v", i, ws[i], want[i])
		}
	}
	// With fault phases (schema 2), the windows are the phases: one per
	// fault however many targets, markers never.
	r := &Result{Phases: []Phase{
		{Name: "before", Kind: PhaseBefore, From: 0, To: 10},
		{Name: "latency", Kind: PhaseFault, Targets: []string{"mc-0", "mc-1"}, From: 10, To: 30},
		{Name: "after", Kind: PhaseAfter, From: 30, To: 100},
	}, Events: []FaultEvent{{At: 30, Fault: "latency", Action: Remove, Target: "mc-0"}}}
	ws = faultWindows(r, 100)
	if len(ws) != 1 || ws[0] != (faultWindow{Label: "latency @ mc-0, mc-1", From: 10, To: 30}) {
		t.Errorf("windows of a result with phases: %+v", ws)
	}
}

// An hour at 1 s keeps every spike: a single 1 s sample far above the rest
// must reach the top of its column.
func TestDownsampleKeepsSpikes(t *testing.T) {
	s := &Series{Metric: "m", Step: 1, Values: make([]Float, 3600)}
	for i := range s.Values {
		s.Values[i] = 1
	}
	s.Values[1801] = 1000
	pts := polylines(s, 3600, func(v float64) float64 { return 1000 - v })
	if len(pts) != 1 || !strings.Contains(pts[0], ",0 ") && !strings.HasSuffix(pts[0], ",0") {
		t.Errorf("spike lost: %.200s", pts)
	}
	if n := strings.Count(pts[0], " ") + 1; n > 2*plotW {
		t.Errorf("%d points for %d columns", n, plotW)
	}
}

const (
	hourSecs = 3600
	maxBytes = 3 << 20
)

func TestRenderHourSize(t *testing.T) {
	if testing.Short() {
		t.Skip("renders six one-hour drills")
	}
	var buf bytes.Buffer
	if err := RenderHTML(&buf, fixtureSet(hourSecs, 1, 1)); err != nil {
		t.Fatal(err)
	}
	t.Logf("one hour, six drills, both profiles: %d bytes", buf.Len())
	if buf.Len() > maxBytes {
		t.Errorf("report is %d bytes, over %d", buf.Len(), maxBytes)
	}
}

func BenchmarkRenderHour(b *testing.B) {
	rs := fixtureSet(hourSecs, 1, 1)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := RenderHTML(&buf, rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/report")
	if buf.Len() > maxBytes {
		b.Fatalf("report is %d bytes, over %d", buf.Len(), maxBytes)
	}
}

// A gap of missing values breaks the line instead of drawing across it.
func TestPolylineGaps(t *testing.T) {
	s := &Series{Metric: "m", Step: 1, Values: []Float{1, 2, NaN(), NaN(), 3, 4}}
	pts := polylines(s, 6, func(v float64) float64 { return v })
	if len(pts) != 2 {
		t.Fatalf("got %d lines %q, want 2", len(pts), pts)
	}
	long := &Series{Metric: "m", Step: 1, Values: make([]Float, 7200)}
	for i := 3000; i < 4000; i++ {
		long.Values[i] = NaN()
	}
	if got := polylines(long, 7200, func(v float64) float64 { return v }); len(got) != 2 {
		t.Errorf("downsampled: %d lines, want 2", len(got))
	}
}

// A flat stretch keeps its two ends: the points between them draw
// nothing the line does not, and a step keeps its corners.
func TestPolylineFlatStretches(t *testing.T) {
	s := &Series{Metric: "m", Step: 1, Values: []Float{5, 5, 5, 5, 7, 7, 7, 5}}
	pts := polylines(s, 8, func(v float64) float64 { return v })
	if len(pts) != 1 {
		t.Fatalf("got %q", pts)
	}
	want := []string{"52,5", "313,5", "400,7", "574,7", "661,5"}
	if got := strings.Fields(pts[0]); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("points %q, want %q", got, want)
	}
}
