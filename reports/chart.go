package reports

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// Chart geometry in SVG user units. The plot is as many units wide as it has
// columns: series are downsampled to one min/max pair per column, so an hour
// at 1 s costs the same as a few minutes and no spike is averaged away.
const (
	chartW     = 760
	chartH     = 210
	padLeft    = 52
	padRight   = 12
	padTop     = 34
	padBottom  = 22
	plotW      = chartW - padLeft - padRight
	plotH      = chartH - padTop - padBottom
	maxXTicks  = 8
	gridLinesY = 4
)

// line is one series on a chart.
type line struct {
	label string
	color string
	dash  bool
	s     *Series
}

// chart is one time-series chart with the run's fault windows shaded and
// its markers (steps, protections) ticked on the top edge.
type chart struct {
	key      string // the chart's kind, shared by every run of a drill
	id       string
	title    string
	unit     string
	lines    []line
	windows  []faultWindow
	markers  []FaultEvent
	duration float64 // seconds shown on the x axis
	yMax     float64 // fixed top of the y axis; 0 picks one from the data
}

// top is the y axis top the chart's own data asks for.
func (c *chart) top() float64 {
	if c.yMax > 0 {
		return c.yMax
	}
	hi := math.Inf(-1)
	for _, l := range c.lines {
		for _, v := range l.s.Values {
			if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
				hi = math.Max(hi, f)
			}
		}
	}
	if math.IsInf(hi, -1) {
		return 0
	}
	return niceCeil(hi * 1.05)
}

// faultWindow is one fault from injection to removal, in seconds since
// Start. Open is true when the fault was never removed.
type faultWindow struct {
	Label    string
	From, To float64
	Open     bool
}

// faultWindows are the run's fault phases; for a result without them
// (schema 1), inject and remove events paired by fault, target and name,
// an injection with no removal running to the end. Markers are not faults.
func faultWindows(r *Result, end float64) []faultWindow {
	var out []faultWindow
	for _, p := range r.Phases {
		if p.Kind != PhaseFault {
			continue
		}
		label := p.Name
		if len(p.Targets) > 0 {
			label += " @ " + strings.Join(p.Targets, ", ")
		}
		out = append(out, faultWindow{Label: label, From: p.From, To: p.To, Open: r.openFault(p)})
	}
	if len(out) > 0 {
		return out
	}
	type key struct{ fault, target, name string }
	open := map[key][]int{}
	for _, e := range r.Events {
		if e.Marker {
			continue
		}
		k := key{e.Fault, e.Target, e.Name}
		switch e.Action {
		case Inject:
			label := e.Fault
			if e.Name != "" {
				label = e.Name
			}
			if e.Target != "" {
				label += " @ " + e.Target
			}
			open[k] = append(open[k], len(out))
			out = append(out, faultWindow{Label: label, From: e.At, To: end, Open: true})
		case Remove:
			if q := open[k]; len(q) > 0 {
				out[q[0]].To, out[q[0]].Open = e.At, false
				open[k] = q[1:]
			}
		}
	}
	return out
}

// render writes the chart as inline SVG.
func (c *chart) render(b *strings.Builder) {
	dur := c.duration
	lo, hi, any := math.Inf(1), math.Inf(-1), false
	for _, l := range c.lines {
		for _, v := range l.s.Values {
			f := float64(v)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				continue
			}
			any = true
			lo, hi = math.Min(lo, f), math.Max(hi, f)
		}
		if d := float64(len(l.s.Values)) * l.s.step(); d > dur {
			dur = d
		}
	}
	if dur <= 0 {
		dur = 1
	}
	yMax := c.yMax
	if yMax == 0 {
		yMax = niceCeil(hi * 1.05)
	}
	yMin := 0.0
	if any && lo < 0 {
		yMin = -niceCeil(-lo * 1.05)
	}
	if !any || yMax <= yMin {
		yMax = yMin + 1
	}

	fmt.Fprintf(b, `<svg class="chart" id="%s" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`,
		c.id, chartW, chartH, html.EscapeString(c.title), html.EscapeString(c.title))
	fmt.Fprintf(b, `<text class="ct" x="%d" y="14">%s</text>`, padLeft, html.EscapeString(c.title))
	// Legend, right-aligned on the title line.
	x := chartW - padRight
	for i := len(c.lines) - 1; i >= 0; i-- {
		l := c.lines[i]
		w := 24 + 6*len([]rune(l.label))
		x -= w
		dash := ""
		if l.dash {
			dash = ` stroke-dasharray="4 3"`
		}
		fmt.Fprintf(b, `<line x1="%d" y1="10" x2="%d" y2="10" stroke="%s" stroke-width="2"%s/><text class="lg" x="%d" y="14">%s</text>`,
			x, x+10, l.color, dash, x+13, html.EscapeString(l.label))
	}

	px := func(t float64) float64 { return padLeft + t/dur*plotW }
	py := func(v float64) float64 { return padTop + plotH - (v-yMin)/(yMax-yMin)*plotH }

	// Fault windows under everything else.
	for i, w := range c.windows {
		x0, x1 := px(math.Max(0, w.From)), px(math.Min(dur, w.To))
		if x1-x0 < 2 { // an instantaneous fault still shows
			x1 = x0 + 2
		}
		fmt.Fprintf(b, `<rect class="fw" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s</title></rect>`,
			x0, padTop, x1-x0, plotH, html.EscapeString(w.Label+" "+fmtWindow(w)))
		fmt.Fprintf(b, `<text class="fl" x="%.1f" y="%d">%s</text>`, x0+2, padTop+10+10*(i%3), html.EscapeString(w.Label))
	}
	// Markers: a tick on the top edge each, labelled where there is room.
	lastLabel := math.Inf(-1)
	for _, m := range c.markers {
		if m.At > dur {
			continue
		}
		x := px(m.At)
		label := m.Fault
		if m.Name != "" {
			label = m.Name
		}
		tip := fmt.Sprintf("%s %s %s at %s", m.Fault, m.Target, m.Name, fmtClock(m.At))
		fmt.Fprintf(b, `<path class="mk" d="M%.1f %d l-3 -5 h6 z"><title>%s</title></path><line class="mkl" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`,
			x, padTop, html.EscapeString(tip), x, padTop, x, padTop+plotH)
		if x-lastLabel > 60 {
			fmt.Fprintf(b, `<text class="ml" x="%.1f" y="%d">%s</text>`, x+2, padTop-7, html.EscapeString(label))
			lastLabel = x
		}
	}

	// Grid and axes.
	for i := 0; i <= gridLinesY; i++ {
		v := yMin + (yMax-yMin)*float64(i)/gridLinesY
		y := py(v)
		fmt.Fprintf(b, `<line class="g" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/><text class="ax" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padLeft, y, padLeft+plotW, y, padLeft-4, y+3, fmtNum(v))
	}
	step := tickStep(dur)
	for t := 0.0; t <= dur+1e-9; t += step {
		anchor := "middle"
		if px(t) > chartW-padRight-20 { // keep the last label inside the chart
			anchor = "end"
		}
		fmt.Fprintf(b, `<text class="ax" x="%.1f" y="%d" text-anchor="%s">%s</text>`, px(t), chartH-6, anchor, fmtClock(t))
	}
	fmt.Fprintf(b, `<rect class="fr" x="%d" y="%d" width="%d" height="%d"/>`, padLeft, padTop, plotW, plotH)

	if !any {
		fmt.Fprintf(b, `<text class="nd" x="%d" y="%d" text-anchor="middle">no data</text></svg>`, padLeft+plotW/2, padTop+plotH/2+5)
		return
	}
	for _, l := range c.lines {
		dash := ""
		if l.dash {
			dash = ` stroke-dasharray="4 3"`
		}
		for _, pts := range polylines(l.s, dur, py) {
			fmt.Fprintf(b, `<polyline stroke="%s"%s points="%s"/>`, l.color, dash, pts)
		}
	}
	b.WriteString(`</svg>`)
}

// polylines turns a series into SVG point lists, one per unbroken stretch of
// values. With more samples than plot columns each column keeps its minimum
// and maximum, in the order they occurred, so the envelope is exact.
func polylines(s *Series, dur float64, py func(float64) float64) []string {
	var out []string
	var cur []byte
	// A point between two at its height draws nothing the line through
	// them does not: a flat stretch (a cap, a quiet error class, memory)
	// keeps its ends only, which keeps reports with many series small.
	var pts [][2]float64
	flush := func() {
		for _, p := range pts {
			cur = strconv.AppendFloat(cur, p[0], 'f', -1, 64)
			cur = append(cur, ',')
			cur = strconv.AppendFloat(cur, p[1], 'f', -1, 64)
			cur = append(cur, ' ')
		}
		pts = pts[:0]
		if len(cur) > 0 {
			out = append(out, string(cur[:len(cur)-1]))
			cur = cur[:0]
		}
	}
	point := func(x float64, v float64) {
		p := [2]float64{math.Round(x*10) / 10, math.Round(py(v)*10) / 10}
		if n := len(pts); n >= 2 && pts[n-1][1] == p[1] && pts[n-2][1] == p[1] {
			pts[n-1] = p
			return
		}
		pts = append(pts, p)
	}
	st := s.step()
	n := len(s.Values)
	if n <= plotW {
		for i, v := range s.Values {
			f := float64(v)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				flush()
				continue
			}
			point(padLeft+float64(i)*st/dur*plotW, f)
		}
		flush()
		return out
	}
	for col := 0; col < plotW; col++ {
		i0 := int(float64(col) / plotW * dur / st)
		i1 := int(float64(col+1) / plotW * dur / st)
		if i1 > n {
			i1 = n
		}
		if i0 >= i1 {
			if i0 >= n {
				break
			}
			i1 = i0 + 1
		}
		lo, hi, iLo, iHi := math.Inf(1), math.Inf(-1), -1, -1
		for i := i0; i < i1; i++ {
			f := float64(s.Values[i])
			if math.IsNaN(f) || math.IsInf(f, 0) {
				continue
			}
			if f < lo {
				lo, iLo = f, i
			}
			if f > hi {
				hi, iHi = f, i
			}
		}
		if iLo < 0 {
			flush()
			continue
		}
		x := float64(padLeft + col)
		switch {
		case lo == hi:
			point(x, lo)
		case iLo < iHi:
			point(x, lo)
			point(x, hi)
		default:
			point(x, hi)
			point(x, lo)
		}
	}
	flush()
	return out
}

// niceCeil rounds v up to 1, 2, 4, 6 or 8 times a power of ten, so the
// labels of four grid steps are round numbers.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 4, 6, 8, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// tickStep picks a round time step giving at most maxXTicks labels.
func tickStep(dur float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200} {
		if dur/s <= maxXTicks {
			return s
		}
	}
	return 3600 * math.Ceil(dur/3600/maxXTicks)
}

// fmtClock formats seconds since the start as m:ss or h:mm:ss.
func fmtClock(t float64) string {
	s := int(math.Round(t))
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func fmtWindow(w faultWindow) string {
	if w.Open {
		return fmt.Sprintf("(%s - end, never removed)", fmtClock(w.From))
	}
	return fmt.Sprintf("(%s - %s)", fmtClock(w.From), fmtClock(w.To))
}

// fmtNum formats a value compactly for axes and tables: 1.2k, 35, 0.97.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "–"
	case math.IsInf(v, 0):
		return "∞"
	case a >= 1e6:
		return strconv.FormatFloat(math.Round(v/1e5)/10, 'f', -1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(math.Round(v/100)/10, 'f', -1, 64) + "k"
	case a >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	case a >= 1:
		return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	case a == 0:
		return "0"
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}
