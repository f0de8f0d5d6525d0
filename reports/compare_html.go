package reports

import (
	"fmt"
	"html/template"
	"io"
	"math"
)

// pval formats a p-value; "–" when no test was made.
func pval(p float64) string {
	if math.IsNaN(p) {
		return "–"
	}
	return fmt.Sprintf("%.3f", p)
}

type compareView struct {
	Title       string
	CSP         template.HTMLAttr
	C           *Comparison
	Regressions int
	Plots       []plotGroup
}

// plotGroup is the key metrics of one drill and profile, a strip plot each.
type plotGroup struct {
	Drill, Profile string
	NotJudged      bool
	Plots          []template.HTML
}

// RenderCompareHTML writes c as one self-contained HTML page: verdict
// changes first, then the checks, those whose outcome changed first, then
// every key metric: a strip plot of its runs against the tolerance band,
// and its change, p-value and outcome in a table.
func RenderCompareHTML(w io.Writer, c *Comparison) error {
	v := compareView{Title: "firedrill comparison", CSP: cspAttr, C: c, Regressions: c.Regressions()}
	for _, m := range c.Metrics {
		if n := len(v.Plots); n == 0 || v.Plots[n-1].Drill != m.Drill || v.Plots[n-1].Profile != m.Profile {
			v.Plots = append(v.Plots, plotGroup{Drill: m.Drill, Profile: m.Profile, NotJudged: m.NotJudged})
		}
		g := &v.Plots[len(v.Plots)-1]
		g.Plots = append(g.Plots, stripPlot(m, slug("strip-"+m.Drill+"-"+m.Profile+"-"+m.Metric)))
	}
	if err := tmpl.ExecuteTemplate(w, "compare", v); err != nil {
		return fmt.Errorf("render comparison: %w", err)
	}
	return nil
}
