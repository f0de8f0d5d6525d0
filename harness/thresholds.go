package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/firedrill-dev/firedrill/reports"
)

// readThresholds reads k6's --summary-export file: every threshold
// expression of every metric with its outcome.
func readThresholds(path string) ([]reports.Threshold, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read k6 summary: %w", err)
	}
	var sum struct {
		Metrics map[string]map[string]json.RawMessage `json:"metrics"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		return nil, fmt.Errorf("read k6 summary %s: %w", path, err)
	}
	var out []reports.Threshold
	for metric, m := range sum.Metrics {
		var ths map[string]json.RawMessage
		if raw, ok := m["thresholds"]; ok {
			_ = json.Unmarshal(raw, &ths)
		}
		for expr, raw := range ths {
			t := reports.Threshold{Metric: metric, Expression: expr}
			// The value the expression judged: its aggregate ("count",
			// "p(99)", "rate", ...) among the metric's exported values.
			agg := strings.TrimSpace(strings.FieldsFunc(expr, func(r rune) bool { return strings.ContainsRune("<>=!", r) })[0])
			if agg == "value" {
				if _, ok := m["value"]; !ok {
					agg = "rate"
				}
			}
			var v float64
			if rv, ok := m[agg]; ok && json.Unmarshal(rv, &v) == nil {
				f := reports.Float(v)
				t.Value = &f
			}
			var failed bool
			var obj struct {
				OK *bool `json:"ok"`
			}
			// The export writes `"expr": <failed>`; handleSummary's form is
			// {"ok": bool}. Accept both.
			if json.Unmarshal(raw, &failed) == nil {
				t.OK = !failed
			} else if json.Unmarshal(raw, &obj) == nil && obj.OK != nil {
				t.OK = *obj.OK
			}
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Metric != out[j].Metric {
			return out[i].Metric < out[j].Metric
		}
		return out[i].Expression < out[j].Expression
	})
	return out, nil
}
