package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/firedrill-dev/firedrill/reports"
)

// k6Summary is k6's --summary-export file: every metric's exported
// values ("count", "p(99)", "rate", ...) and its thresholds.
type k6Summary struct {
	Metrics map[string]map[string]json.RawMessage `json:"metrics"`
}

// readSummary reads a --summary-export file; every reader of the summary
// goes through it.
func readSummary(path string) (k6Summary, error) {
	var sum k6Summary
	b, err := os.ReadFile(path)
	if err != nil {
		return sum, fmt.Errorf("read k6 summary: %w", err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		return sum, fmt.Errorf("read k6 summary %s: %w", path, err)
	}
	return sum, nil
}

// thresholds is a metric's threshold expressions, each with its outcome
// as the file writes it; nil when it has none.
func (s k6Summary) thresholds(metric string) map[string]json.RawMessage {
	raw, ok := s.Metrics[metric]["thresholds"]
	if !ok {
		return nil
	}
	var ths map[string]json.RawMessage
	if json.Unmarshal(raw, &ths) != nil {
		return nil
	}
	return ths
}

// readThresholds reads k6's --summary-export file: every threshold
// expression of every metric with its outcome.
func readThresholds(path string) ([]reports.Threshold, error) {
	sum, err := readSummary(path)
	if err != nil {
		return nil, err
	}
	var out []reports.Threshold
	for metric, m := range sum.Metrics {
		for expr, raw := range sum.thresholds(metric) {
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
