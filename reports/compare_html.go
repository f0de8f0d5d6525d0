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
}

// RenderCompareHTML writes c as one self-contained HTML page: verdict
// changes first, then every key metric with its change and significance.
func RenderCompareHTML(w io.Writer, c *Comparison) error {
	v := compareView{Title: "firedrill comparison", CSP: cspAttr, C: c, Regressions: c.Regressions()}
	if err := tmpl.ExecuteTemplate(w, "compare", v); err != nil {
		return fmt.Errorf("render comparison: %w", err)
	}
	return nil
}
