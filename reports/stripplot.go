package reports

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// Strip plot geometry in SVG user units: small multiples, the key metrics
// of one drill and profile side by side across the page.
const (
	stripW      = 200
	stripH      = 172
	stripLeft   = 42
	stripRight  = 8
	stripTop    = 36
	stripBottom = 20
	stripPlotW  = stripW - stripLeft - stripRight
	stripPlotH  = stripH - stripTop - stripBottom
	stripSpread = 26 // width over which one side's dots are spread
)

// Colours of the two sides, from the report's palette.
var (
	baseColor = palette[0]
	headColor = palette[2]
)

// stripPlot draws one key metric of a comparison: a dot per run of base
// and of head, each side's median as a bar, and the tolerance band around
// the base median. A head median outside the band is a change past the
// tolerance, which is what decides a finding, so the picture and the
// verdict cannot disagree.
func stripPlot(m MetricChange, id string) template.HTML {
	var b strings.Builder
	title := m.Metric
	if m.Unit != "" {
		title += " (" + m.Unit + ")"
	}
	fmt.Fprintf(&b, `<svg class="strip" id="%s" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`,
		id, stripW, stripH, html.EscapeString(title+": "+outcomeText(m)), html.EscapeString(title))
	fmt.Fprintf(&b, `<text class="ct" x="4" y="13">%s</text>`, html.EscapeString(title))
	fmt.Fprintf(&b, `<text class="%s" x="4" y="27">%s</text>`, outcomeClass(m), html.EscapeString(outcomeText(m)))

	base, head := finite(m.Base), finite(m.Head)
	bandLo, bandHi, band := toleranceBand(m)
	yMin, yMax, step := stripAxis(m, base, head, bandLo, bandHi, band)
	py := func(v float64) float64 {
		return stripTop + stripPlotH - (v-yMin)/(yMax-yMin)*stripPlotH
	}
	clamp := func(v float64) float64 { return math.Max(yMin, math.Min(yMax, v)) }

	if band {
		y0, y1 := py(clamp(bandHi)), py(clamp(bandLo))
		tip := fmt.Sprintf("tolerance ±%s around the base median %s: %s to %s",
			fmtTol(m.Tolerance), fmtVal(m.BaseMedian, m.Unit), fmtNum(bandLo), fmtNum(bandHi))
		fmt.Fprintf(&b, `<rect class="tb" x="%d" y="%.1f" width="%d" height="%.1f"><title>%s</title></rect>`,
			stripLeft, y0, stripPlotW, math.Max(1, y1-y0), html.EscapeString(tip))
		fmt.Fprintf(&b, `<line class="bm" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`,
			stripLeft, py(m.BaseMedian), stripLeft+stripPlotW, py(m.BaseMedian))
	}
	for i := 0; yMin+float64(i)*step <= yMax+step/2; i++ {
		v := yMin + float64(i)*step
		y := py(v)
		fmt.Fprintf(&b, `<line class="g" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/><text class="ax" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			stripLeft, y, stripLeft+stripPlotW, y, stripLeft-3, y+3, fmtNum(v))
	}
	fmt.Fprintf(&b, `<rect class="fr" x="%d" y="%d" width="%d" height="%d"/>`, stripLeft, stripTop, stripPlotW, stripPlotH)

	side := func(name, color string, cx float64, vs []float64, all []float64) {
		fmt.Fprintf(&b, `<text class="ax" x="%.1f" y="%d" text-anchor="middle">%s n=%d</text>`, cx, stripH-6, name, len(all))
		if len(vs) == 0 {
			fmt.Fprintf(&b, `<text class="nd" x="%.1f" y="%d" text-anchor="middle">no data</text>`, cx, stripTop+stripPlotH/2)
			return
		}
		med := median(vs)
		fmt.Fprintf(&b, `<line class="md" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"><title>%s median %s</title></line>`,
			cx-stripSpread/2-6, py(med), cx+stripSpread/2+6, py(med), color, name, html.EscapeString(fmtVal(med, m.Unit)))
		// Repeats are spread sideways in run order, so equal values (no
		// error in any run) still show one dot each.
		gap := 0.0
		if len(vs) > 1 {
			gap = math.Min(7, stripSpread/float64(len(vs)-1))
		}
		for i, v := range vs {
			x := cx + (float64(i)-float64(len(vs)-1)/2)*gap
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.2" fill="%s"><title>%s run %d: %s</title></circle>`,
				x, py(v), color, name, i+1, html.EscapeString(fmtVal(v, m.Unit)))
		}
	}
	side("base", baseColor, stripLeft+stripPlotW*0.28, base, m.Base)
	side("head", headColor, stripLeft+stripPlotW*0.72, head, m.Head)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every text above is escaped
}

// toleranceBand is the base median ± its tolerance: where the head median
// may lie without a finding. ok is false without a base median.
func toleranceBand(m MetricChange) (lo, hi float64, ok bool) {
	if math.IsNaN(m.BaseMedian) || math.IsInf(m.BaseMedian, 0) {
		return 0, 0, false
	}
	d := math.Abs(m.BaseMedian) * m.Tolerance
	return m.BaseMedian - d, m.BaseMedian + d, true
}

// stripAxis picks the y axis: every run and the band in view, with a
// little room, on round steps. It does not start at zero: how the runs sit
// against the band is the point, and a zero far below would squash both.
func stripAxis(m MetricChange, base, head []float64, bandLo, bandHi float64, band bool) (lo, hi, step float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	nonNeg := true
	for _, v := range append(append([]float64(nil), base...), head...) {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
		nonNeg = nonNeg && v >= 0
	}
	if band {
		lo, hi = math.Min(lo, bandLo), math.Max(hi, bandHi)
	}
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return 0, 1, 0.25
	}
	pad := (hi - lo) * 0.1
	if pad == 0 {
		pad = math.Max(math.Abs(hi)*0.1, 0.5)
	}
	lo, hi = lo-pad, hi+pad
	if nonNeg {
		lo = math.Max(lo, 0)
	}
	step = niceStep((hi - lo) / 4)
	lo, hi = math.Floor(lo/step+1e-9)*step, math.Ceil(hi/step-1e-9)*step
	// A ratio cannot pass 1, however wide the band above it.
	if m.Unit == "" && nonNeg && hi > 1 && allAtMost(1, base, head) {
		hi = 1
	}
	if hi <= lo {
		hi = lo + step
	}
	return lo, hi, step
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, k := range []float64{1, 2, 5, 10} {
		if v <= k*p*(1+1e-9) {
			return k * p
		}
	}
	return 10 * p
}

func allAtMost(limit float64, xss ...[]float64) bool {
	for _, xs := range xss {
		for _, x := range xs {
			if x > limit {
				return false
			}
		}
	}
	return true
}

// finite drops the values a plot cannot place (an infinite p99 of
// operations that never finished); the side's n still counts them.
func finite(xs []float64) []float64 {
	var out []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}

// outcomeText is a metric's outcome as a plot's subtitle says it.
func outcomeText(m MetricChange) string {
	s := m.Outcome
	switch m.Outcome {
	case OutcomeRegression:
		s = "✗ REGRESSION"
	case OutcomeNotJudged: // the group's heading says why
		s = direction(m) + ", not judged"
	case OutcomeCannotTell, OutcomeSame:
		return s
	}
	return s + " · " + fmtPct(m.Change)
}

// outcomeClass colours a plot's subtitle as the table colours the outcome.
func outcomeClass(m MetricChange) string {
	switch m.Outcome {
	case OutcomeRegression:
		return "fail"
	case OutcomeImprovement:
		return "pass"
	case OutcomeNotJudged, OutcomeCannotTell:
		return "warn"
	}
	return "ot"
}
