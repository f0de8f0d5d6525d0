package reports

import (
	"bytes"
	"encoding/xml"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// runs makes n repeats of drill/profile; the i-th gets latency scaled by
// scales[i%len(scales)] so sides can be made to overlap or separate.
func runs(drill, profile, release string, n int, seed uint64, scales ...float64) []*Result {
	var rs []*Result
	for i := range n {
		r := fixture(drill, profile, 60, seed+uint64(i), scales[i%len(scales)])
		r.Release = release
		rs = append(rs, r)
	}
	return rs
}

func find(t *testing.T, c *Comparison, profile, metric string) MetricChange {
	t.Helper()
	for _, m := range c.Metrics {
		if m.Profile == profile && m.Metric == metric {
			return m
		}
	}
	t.Fatalf("no %s %s in comparison", profile, metric)
	return MetricChange{}
}

func TestCompareSignificantRegression(t *testing.T) {
	base := runs("hot-key-expiry", "protected", "v1", 5, 1, 1.00, 1.01, 0.99, 1.02, 0.98)
	head := runs("hot-key-expiry", "protected", "v2", 5, 100, 1.50, 1.52, 1.49, 1.51, 1.48)
	c, err := Compare(base, head, CompareOptions{Tolerance: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	m := find(t, c, "protected", "peak DB query rate")
	if m.Significance != Significant || !m.Worse || !m.Regression {
		t.Errorf("peak DB query rate: %+v; want a significant regression", m)
	}
	if math.Abs(m.P-1.0/252) > 1e-12 {
		t.Errorf("p = %v, want 1/252 (one-sided) for fully separated 5 v 5", m.P)
	}
	if m.Change < 0.4 || m.Change > 0.6 {
		t.Errorf("change = %v, want about +50%%", m.Change)
	}
	if c.Regressions() == 0 {
		t.Error("Regressions() = 0")
	}
}

func TestCompareTolerance(t *testing.T) {
	base := runs("hot-key-expiry", "protected", "v1", 5, 1, 1.00, 1.001, 0.999, 1.002, 0.998)
	head := runs("hot-key-expiry", "protected", "v2", 5, 100, 1.03, 1.031, 1.029, 1.032, 1.028)
	for _, tc := range []struct {
		opts CompareOptions
		want bool
	}{
		{CompareOptions{Tolerance: 0.05}, false}, // +3% is inside 5%
		{CompareOptions{Tolerance: 0.01}, true},  // but past 1%
		{CompareOptions{Tolerance: 0.01, Tolerances: map[string]float64{"recovery time": 0.10}}, true},
	} {
		c, err := Compare(base, head, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		m := find(t, c, "protected", "recovery time")
		if m.Significance != Significant || m.Regression != tc.want && tc.opts.Tolerances == nil {
			t.Errorf("tolerance %v: %+v; want regression=%v", tc.opts.Tolerance, m, tc.want)
		}
		if tc.opts.Tolerances != nil && m.Regression {
			t.Errorf("per-metric tolerance 10%% ignored: %+v", m)
		}
	}
}

func TestCompareBetterIsNoRegression(t *testing.T) {
	base := runs("hot-key-expiry", "protected", "v1", 5, 1, 1.5, 1.51, 1.49, 1.52, 1.48)
	head := runs("hot-key-expiry", "protected", "v2", 5, 100, 1, 1.01, 0.99, 1.02, 0.98)
	c, err := Compare(base, head, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Regressions(); n != 0 {
		t.Errorf("%d regressions for a faster head", n)
	}
	if m := find(t, c, "protected", "p99 latency"); m.Worse || m.Significance != Significant || !m.Improvement || m.Outcome != OutcomeImprovement {
		t.Errorf("p99: %+v; want an improvement", m)
	}
}

// A significant change within the tolerance is noise in either direction:
// two nightlies of the same code read "significant, better" at -5.1%
// against a 25% tolerance. Only past the tolerance is it a finding.
func TestCompareWithinToleranceIsNoFinding(t *testing.T) {
	base := runs("pipeline", "protected", "v1", 3, 1, 1.00, 1.001, 0.999)
	for _, tc := range []struct {
		name    string
		scale   float64
		outcome string
	}{
		{"5% better", 0.95, OutcomeWithinTolerance},
		{"5% worse", 1.05, OutcomeWithinTolerance},
		{"exactly the tolerance", 1.25, OutcomeWithinTolerance},
		{"40% better", 0.60, OutcomeImprovement},
		{"40% worse", 1.40, OutcomeRegression},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := runs("pipeline", "protected", "v2", 3, 100, tc.scale, tc.scale*1.001, tc.scale*0.999)
			c, err := Compare(base, head, CompareOptions{Tolerance: 0.25})
			if err != nil {
				t.Fatal(err)
			}
			m := find(t, c, "protected", "recovery time")
			if m.Significance != Significant || m.Outcome != tc.outcome {
				t.Fatalf("%+v; want significant, %s", m, tc.outcome)
			}
			if m.Regression != (tc.outcome == OutcomeRegression) || m.Improvement != (tc.outcome == OutcomeImprovement) {
				t.Errorf("regression %v, improvement %v; want only the outcome %s", m.Regression, m.Improvement, tc.outcome)
			}
			if tc.outcome == OutcomeWithinTolerance && !strings.Contains(m.Note, "within the 25% tolerance") {
				t.Errorf("note %q; want it to name the tolerance", m.Note)
			}
			var txt, h bytes.Buffer
			if err := WriteCompareText(&txt, c); err != nil {
				t.Fatal(err)
			}
			if err := RenderCompareHTML(&h, c); err != nil {
				t.Fatal(err)
			}
			row := lineWith(txt.String(), "recovery time  ")
			if tc.outcome == OutcomeWithinTolerance && (!strings.HasSuffix(row, "within tolerance") || strings.Contains(h.String(), ">improvement")) {
				t.Errorf("text row %q, or the HTML calls it an improvement; want within tolerance", row)
			}
		})
	}
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func TestCompareCannotTell(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		note string
	}{
		{"one run a side", 1, "repeat each side"},
		{"two runs a side", 2, "at least 3 runs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := runs("ddl-storm", "protected", "v1", tc.n, 1, 1)
			head := runs("ddl-storm", "protected", "v2", tc.n, 100, 3) // much worse, but unprovable
			c, err := Compare(base, head, CompareOptions{Tolerance: 0.05})
			if err != nil {
				t.Fatal(err)
			}
			m := find(t, c, "protected", "p99 latency")
			if m.Significance != CannotTell || m.Regression || !strings.Contains(m.Note, tc.note) {
				t.Errorf("%+v; want cannot tell with a note about %q", m, tc.note)
			}
			if !m.Worse {
				t.Error("head is worse, and should still say so")
			}
		})
	}
}

// The nightly's default of 3 repeats: a head worse in every run than
// every base run is a regression (one-sided p = 1/20); one overlap is not.
func TestCompareThreeRunsASide(t *testing.T) {
	base := runs("ddl-storm", "protected", "v1", 3, 1, 1.00, 1.01, 0.99)
	c, err := Compare(base, runs("ddl-storm", "protected", "v2", 3, 100, 1.50, 1.52, 1.49), CompareOptions{Tolerance: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	m := find(t, c, "protected", "p99 latency")
	if m.Significance != Significant || !m.Regression || math.Abs(m.P-0.05) > 1e-12 {
		t.Errorf("separated 3 v 3: %+v; want a significant regression at p = 0.05", m)
	}
	c, err = Compare(base, runs("ddl-storm", "protected", "v2", 3, 100, 1.50, 0.70, 1.49), CompareOptions{Tolerance: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	m = find(t, c, "protected", "p99 latency")
	if m.Significance != NotSignificant || m.Regression || !m.Worse {
		t.Errorf("overlapping 3 v 3: %+v; want worse but not significant", m)
	}
}

// A short-form run is not comparable with a full-length one: their metrics
// cannot tell, their verdicts still compare.
func TestCompareDifferentParametersCannotTell(t *testing.T) {
	base := runs("ddl-storm", "protected", "v1", 3, 1, 1.00, 1.01, 0.99)
	head := runs("ddl-storm", "protected", "v2", 3, 100, 1.50, 1.52, 1.49)
	for _, r := range head {
		r.Parameters = map[string]string{"duration": "45"}
	}
	c, err := Compare(base, head, CompareOptions{Tolerance: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	m := find(t, c, "protected", "p99 latency")
	if m.Significance != CannotTell || m.Regression || !strings.Contains(m.Note, "duration: 60s vs 45") {
		t.Errorf("%+v; want cannot tell, naming the parameter", m)
	}
	if len(c.Verdicts) != 1 {
		t.Errorf("verdicts %d, want 1", len(c.Verdicts))
	}
}

func TestCompareVerdictRegression(t *testing.T) {
	base := runs("plan-regression", "protected", "v1", 1, 1, 1)
	head := runs("plan-regression", "protected", "v2", 1, 2, 1)
	head[0].Verdict = Verdict{Expected: Held, Reached: Broken, Pass: false, Reason: "p99 over 200 ms"}
	c, err := Compare(base, head, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Verdicts) != 1 || !c.Verdicts[0].Regression || c.Regressions() != 1 {
		t.Fatalf("verdicts %+v; want one verdict regression", c.Verdicts)
	}
	// Failing in base too is not a regression: it was already broken.
	base[0].Verdict = head[0].Verdict
	c, _ = Compare(base, head, CompareOptions{})
	if c.Regressions() != 0 {
		t.Error("a verdict failing on both sides counted as a regression")
	}
}

func TestCompareOneSided(t *testing.T) {
	base := append(runs("a", "protected", "v1", 1, 1, 1), runs("gone", "protected", "v1", 1, 1, 1)...)
	head := append(runs("a", "protected", "v2", 1, 1, 1), runs("new", "protected", "v2", 1, 1, 1)...)
	inc := runs("a", "protected", "v2", 1, 5, 1)[0]
	inc.Complete, inc.IncompleteReason = false, "timed out"
	head = append(head, inc)
	c, err := Compare(base, head, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(c.Notes, "\n")
	for _, want := range []string{"gone/protected: only in base", "new/protected: new in head", "incomplete (timed out)"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if _, err := Compare(nil, head, CompareOptions{}); err == nil {
		t.Error("compare with no base: want error")
	}
	if _, err := Compare(base, head, CompareOptions{Alpha: 2}); err == nil {
		t.Error("alpha 2: want error")
	}
	if _, err := Compare(base, head, CompareOptions{Tolerances: map[string]float64{"p99 latncy": 0.2}}); err == nil || !strings.Contains(err.Error(), `"p99 latncy"`) {
		t.Errorf("misspelt tolerance name: want an error naming it, got %v", err)
	}
}

func goldenComparison(t *testing.T) (*Comparison, []*Result) {
	base := append(runs("hot-key-expiry", "unprotected", "v1.3.0", 5, 1, 1, 1.01, 0.99, 1.02, 0.98),
		runs("hot-key-expiry", "protected", "v1.3.0", 1, 1, 1)...)
	head := append(runs("hot-key-expiry", "unprotected", "v1.4.0", 5, 100, 1.5, 1.51, 1.49, 1.52, 1.48),
		runs("hot-key-expiry", "protected", "v1.4.0", 1, 9, 1)...)
	head[5].Verdict = Verdict{Expected: Held, Reached: Broken, Reason: "steady state failed: fetches stay fast"}
	head[5].Checks[2].Outcome = Fail
	c, err := Compare(base, head, CompareOptions{Tolerance: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	return c, head
}

func TestCompareGolden(t *testing.T) {
	c, head := goldenComparison(t)
	var h, j, txt bytes.Buffer
	if err := RenderCompareHTML(&h, c); err != nil {
		t.Fatal(err)
	}
	assertSelfContained(t, h.String())
	golden(t, "compare.html.golden", h.Bytes())
	if err := WriteJUnit(&j, head, c); err != nil {
		t.Fatal(err)
	}
	golden(t, "junit.xml.golden", j.Bytes())
	if err := WriteCompareText(&txt, c); err != nil {
		t.Fatal(err)
	}
	golden(t, "compare.txt.golden", txt.Bytes())
}

func TestJUnitCounts(t *testing.T) {
	c, head := goldenComparison(t)
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, head, c); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("junit is not XML: %v", err)
	}
	if len(got.Suites) != 3 {
		t.Fatalf("%d suites, want verdicts, checks and regressions", len(got.Suites))
	}
	v := got.Suites[0]
	if v.Name != "verdicts" || v.Tests != 2 || v.Failures != 1 {
		t.Errorf("verdicts suite: %d tests, %d failures; want 2 (one per drill x profile) and 1", v.Tests, v.Failures)
	}
	ch := got.Suites[1]
	if ch.Name != "checks" || ch.Tests != 2*3 {
		t.Errorf("checks suite %q: %d tests, want 6 (3 checks x 2 profiles)", ch.Name, ch.Tests)
	}
	r := got.Suites[2]
	changed := 0
	for _, cc := range c.Checks {
		if cc.Regression || cc.Changed() {
			changed++
		}
	}
	if want := 2 + changed + 2*len(KeyMetrics); r.Tests != want {
		t.Errorf("regressions suite: %d tests, want %d", r.Tests, want)
	}
	if r.Failures != c.Regressions() {
		t.Errorf("regressions suite: %d failures, comparison has %d regressions", r.Failures, c.Regressions())
	}
	// The single-run profile cannot tell, but for the two metrics its runs
	// measured alike (no error, the same recovery time): those are the same.
	if want := len(KeyMetrics) - 2; r.Skipped != want {
		t.Errorf("regressions suite: %d skipped, want %d", r.Skipped, want)
	}
}

// A profile that must break is not judged on its metrics: how hard an
// incident reproduces varies run to run. Its verdict still is.
func TestCompareBrokenProfileMetricsAreNotJudged(t *testing.T) {
	base := runs("ddl-storm", "unprotected", "v1", 3, 1, 1.00, 1.01, 0.99)
	head := runs("ddl-storm", "unprotected", "v2", 3, 100, 1.50, 1.52, 1.49)
	for _, r := range append(base, head...) {
		r.Verdict = Verdict{Expected: Broken, Reached: Broken, Pass: true}
	}
	c, err := Compare(base, head, CompareOptions{Tolerance: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	m := find(t, c, "unprotected", "p99 latency")
	if m.Significance != Significant || !m.Worse || m.Regression || !m.NotJudged || !strings.Contains(m.Note, "expected to break") {
		t.Errorf("%+v; want significant and worse, not a regression, with a note", m)
	}
	if n := c.Regressions(); n != 0 {
		t.Errorf("%d regressions, want 0", n)
	}
	head[2].Verdict = Verdict{Expected: Broken, Reached: Held, Pass: false}
	if c, _ = Compare(base, head, CompareOptions{Tolerance: 0.05}); c.Regressions() != 1 {
		t.Errorf("a broken profile that held: %d regressions, want the verdict's 1", c.Regressions())
	}
}

func TestToleranceText(t *testing.T) {
	c := &Comparison{Tolerance: 0.05}
	if got := c.ToleranceText(); got != "tolerance 5.0%" {
		t.Errorf("one figure: %q", got)
	}
	c.Tolerances = map[string]float64{"p99 latency": 0.25}
	if got := c.ToleranceText(); !strings.Contains(got, "p99 latency 25%") || !strings.Contains(got, "hit ratio 5%") {
		t.Errorf("per metric: %q", got)
	}
}

// A required check that held in every base run and failed in head is a
// regression of its own, listed first; a check that changed in a profile
// whose verdict does not depend on it is shown, not judged.
func TestCheckRegressions(t *testing.T) {
	c, _ := goldenComparison(t)
	if len(c.Checks) == 0 {
		t.Fatal("no checks compared")
	}
	first := c.Checks[0]
	if !first.Regression || first.Profile != "protected" || first.Name != "fetches stay fast" || first.HeadOK != 0 || first.BaseOK != 1 {
		t.Errorf("first check change %+v, want the protected steady state that failed in head", first)
	}
	for _, cc := range c.Checks[1:] {
		if cc.Regression {
			t.Errorf("%+v is a regression; only the protected steady state is", cc)
		}
	}
	if c.Regressions() != 2 { // the verdict and the check
		t.Errorf("%d regressions, want 2", c.Regressions())
	}
}

// withoutSeries drops every series of metric: what the harness writes for a
// counter that never counted (no error of any class, no database query).
func withoutSeries(rs []*Result, metric string) {
	for _, r := range rs {
		r.Series = slices.DeleteFunc(r.Series, func(s Series) bool { return s.Metric == metric })
	}
}

// Two nightlies of the same code without a single error: zero against zero
// is no change, not missing data.
func TestCompareZeroAgainstZero(t *testing.T) {
	base := runs("pipeline", "protected", "v1", 3, 1, 1.00, 1.01, 0.99)
	head := runs("pipeline", "protected", "v2", 3, 100, 1.00, 1.01, 0.99)
	for _, metric := range []string{SeriesErrorRate, SeriesDBQueryRate} {
		withoutSeries(base, metric)
		withoutSeries(head, metric)
	}
	c, err := Compare(base, head, CompareOptions{Tolerance: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	for _, metric := range []string{"error rate", "peak DB query rate"} {
		m := find(t, c, "protected", metric)
		if m.Significance != NotSignificant || m.Outcome != OutcomeSame || m.Change != 0 || m.BaseMedian != 0 || m.HeadMedian != 0 || len(m.Base) != 3 || len(m.Head) != 3 || m.Regression {
			t.Errorf("%s: %+v; want 3 zeros a side: the same", metric, m)
		}
	}
}

// A run without traffic figures did not measure its errors: that side has
// no data, and the comparison says which.
func TestCompareNoDataNamesTheSide(t *testing.T) {
	base := runs("pipeline", "protected", "v1", 3, 1, 1.00, 1.01, 0.99)
	head := runs("pipeline", "protected", "v2", 3, 100, 1.00, 1.01, 0.99)
	withoutSeries(base, SeriesErrorRate)
	withoutSeries(head, SeriesErrorRate)
	withoutSeries(head, SeriesOpRate)
	c, err := Compare(base, head, CompareOptions{Tolerance: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	m := find(t, c, "protected", "error rate")
	if m.Significance != CannotTell || m.Note != "no data in head" || len(m.Base) != 3 || len(m.Head) != 0 {
		t.Errorf("%+v; want cannot tell, no data in head", m)
	}
}

var (
	stripSVG   = regexp.MustCompile(`<svg class="strip" id="([^"]+)".*?</svg>`)
	bandRect   = regexp.MustCompile(`<rect class="tb" x="[^"]*" y="([^"]+)" width="[^"]*" height="([^"]+)"`)
	medianLine = regexp.MustCompile(`<line class="md" x1="[^"]*" y1="([^"]+)"`)
)

// Each key metric is a strip plot: a dot per run, and the head's median
// outside the tolerance band exactly when the change is past the tolerance.
func TestCompareStripPlots(t *testing.T) {
	c, _ := goldenComparison(t)
	var h bytes.Buffer
	if err := RenderCompareHTML(&h, c); err != nil {
		t.Fatal(err)
	}
	plots := map[string]string{}
	for _, m := range stripSVG.FindAllStringSubmatch(h.String(), -1) {
		plots[m[1]] = m[0]
	}
	if len(plots) != len(c.Metrics) {
		t.Fatalf("%d strip plots, want one per key metric of each drill and profile: %d", len(plots), len(c.Metrics))
	}
	past := 0
	for _, m := range c.Metrics {
		svg, ok := plots[slug("strip-"+m.Drill+"-"+m.Profile+"-"+m.Metric)]
		if !ok {
			t.Errorf("%s %s: no plot", m.Profile, m.Metric)
			continue
		}
		if got, want := strings.Count(svg, "<circle"), len(m.Base)+len(m.Head); got != want {
			t.Errorf("%s %s: %d dots, want one per run: %d", m.Profile, m.Metric, got, want)
		}
		band, meds := bandRect.FindStringSubmatch(svg), medianLine.FindAllStringSubmatch(svg, -1)
		if band == nil || len(meds) != 2 {
			t.Errorf("%s %s: band %v, medians %d; want a band and a median per side", m.Profile, m.Metric, band, len(meds))
			continue
		}
		top, height, head := atof(t, band[1]), atof(t, band[2]), atof(t, meds[1][1])
		inside := head >= top-0.1 && head <= top+height+0.1
		if beyond := math.Abs(m.Change) > m.Tolerance; inside == beyond {
			t.Errorf("%s %s: change %s against %s, head median inside the band: %v", m.Profile, m.Metric, fmtPct(m.Change), fmtTol(m.Tolerance), inside)
		}
		if !inside {
			past++
		}
	}
	if past == 0 {
		t.Error("no plot shows a head past its band; the fixture has four")
	}
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// What changed comes before what did not: the verdicts, then the checks
// (those whose outcome changed first), then the metrics, in the page and
// in the text.
func TestCompareChangedChecksComeFirst(t *testing.T) {
	c, _ := goldenComparison(t)
	var h, txt bytes.Buffer
	if err := RenderCompareHTML(&h, c); err != nil {
		t.Fatal(err)
	}
	if err := WriteCompareText(&txt, c); err != nil {
		t.Fatal(err)
	}
	page := h.String()
	regressed, unchanged, metrics := strings.Index(page, `<tr class="fail-row"><td>hot-key-expiry</td><td>protected</td><td>steady: fetches stay fast`),
		strings.Index(page, `<td>unprotected</td><td>signature:`), strings.Index(page, `<h2 id="metrics">`)
	if regressed < 0 || unchanged < 0 || metrics < 0 || !(regressed < unchanged && unchanged < metrics) {
		t.Errorf("HTML: regressed check at %d, unchanged check at %d, metrics at %d; want them in that order", regressed, unchanged, metrics)
	}
	text := txt.String()
	regressed, unchanged, metrics = strings.Index(text, `steady "fetches stay fast"`), strings.Index(text, `signature "the hot set's`), strings.Index(text, "METRIC")
	if regressed < 0 || !strings.Contains(lineWith(text[regressed:], "fetches stay fast"), "REGRESSION") || !(regressed < unchanged && unchanged < metrics) {
		t.Errorf("text: regressed check at %d, unchanged at %d, metrics at %d; want them in that order:\n%s", regressed, unchanged, metrics, text)
	}
}
