package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/firedrill-dev/firedrill/reports"
)

// k6Point is one line of k6's JSON output.
type k6Point struct {
	Type   string `json:"type"`
	Metric string `json:"metric"`
	Data   struct {
		Time  time.Time         `json:"time"`
		Value float64           `json:"value"`
		Tags  map[string]string `json:"tags"`
	} `json:"data"`
}

// hdrLine is one interval of one histogram in the extensions' HDR file
// (FIREDRILL_HDR_OUT).
type hdrLine struct {
	T       float64           `json:"t"`
	Metric  string            `json:"metric"`
	Unit    string            `json:"unit"`
	Tags    map[string]string `json:"tags"`
	Encoded string            `json:"encoded"`
}

// bucket accumulates one second of samples.
type bucket struct {
	sum    map[string]float64            // counters: metric or metric|class
	gauges map[string]map[string]float64 // gauge -> tag set -> last value
	trend  map[string][]float64
}

func newBucket() *bucket {
	return &bucket{sum: map[string]float64{}, gauges: map[string]map[string]float64{}, trend: map[string][]float64{}}
}

// collector turns k6's samples and the HDR intervals into a Result's series,
// events, phases and histograms.
type collector struct {
	start   time.Time
	buckets []*bucket
	events  []reports.FaultEvent
	hist    map[string][]*hdrhistogram.Histogram // metric -> per-second merged
	unit    map[string]string
	// recovery is what a drill measured of recovery after its trigger
	// (gauges firedrill_recovered and firedrill_recovery_s), last value.
	recovery map[string]float64
}

func newCollector(start time.Time) *collector {
	return &collector{start: start, hist: map[string][]*hdrhistogram.Histogram{}, unit: map[string]string{}}
}

func (c *collector) second(t time.Time) int {
	s := int(t.Sub(c.start) / time.Second)
	if s < 0 {
		s = 0
	}
	return s
}

func (c *collector) bucket(s int) *bucket {
	for len(c.buckets) <= s {
		c.buckets = append(c.buckets, newBucket())
	}
	return c.buckets[s]
}

// readSamples reads k6's --out json file (plain or .gz).
func (c *collector) readSamples(path string) error {
	return scanSamples(path, func(line []byte) {
		var p k6Point
		if err := json.Unmarshal(line, &p); err != nil || p.Type != "Point" {
			return
		}
		c.add(p)
	})
}

func (c *collector) add(p k6Point) {
	s := c.second(p.Data.Time)
	b := c.bucket(s)
	tags := p.Data.Tags
	switch p.Metric {
	case "firedrill_fault":
		c.events = append(c.events, reports.FaultEvent{
			At:     p.Data.Time.Sub(c.start).Seconds(),
			Fault:  tags["fault"],
			Action: tags["action"],
			Target: tags["target"],
			Name:   tags["name"],
		})
	case "cache_fetches", "cache_hits", "cache_misses", "db_queries", "cache_late",
		"cache_coalesced", "cache_fill_waits", "cache_stale_served", "cache_lease_won":
		b.sum[p.Metric] += p.Data.Value
	case "firedrill_errors":
		class := tags["class"]
		if class == "" {
			class = "other"
		}
		b.sum["firedrill_errors|"+class] += p.Data.Value
	case "db_connections", "db_inflight", "db_max_connections":
		m := b.gauges[p.Metric]
		if m == nil {
			m = map[string]float64{}
			b.gauges[p.Metric] = m
		}
		m[tagKey(tags)] = p.Data.Value
	case "firedrill_recovered", "firedrill_recovery_s":
		if c.recovery == nil {
			c.recovery = map[string]float64{}
		}
		c.recovery[p.Metric] = p.Data.Value
	case "cache_fetch_ms", "db_query_ms":
		b.trend[p.Metric] = append(b.trend[p.Metric], p.Data.Value)
	}
}

func tagKey(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		if k == "scenario" || k == "group" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		sb.WriteString(k + "=" + tags[k] + ";")
	}
	return sb.String()
}

// readHDR reads the extensions' per-second HDR intervals and merges them per
// second and metric. Missing file: nothing to merge.
func (c *collector) readHDR(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read histograms: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var l hdrLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Encoded == "" {
			continue
		}
		h, err := hdrhistogram.Decode([]byte(l.Encoded))
		if err != nil {
			continue
		}
		sec, frac := math.Modf(l.T)
		s := c.second(time.Unix(int64(sec), int64(frac*1e9)))
		hs := c.hist[l.Metric]
		for len(hs) <= s {
			hs = append(hs, nil)
		}
		if hs[s] == nil {
			hs[s] = h
		} else {
			hs[s].Merge(h)
		}
		c.hist[l.Metric] = hs
		c.unit[l.Metric] = l.Unit
	}
	return nil
}

// series builds the result's 1 s series.
func (c *collector) series() []reports.Series {
	n := len(c.buckets)
	for _, hs := range c.hist {
		n = max(n, len(hs))
	}
	mk := func(metric, unit string, tags map[string]string, f func(s int) float64) reports.Series {
		vs := make([]reports.Float, n)
		for i := range vs {
			vs[i] = reports.Float(f(i))
		}
		return reports.Series{Metric: metric, Unit: unit, Tags: tags, Step: 1, Values: vs}
	}
	b := func(s int) *bucket {
		if s < len(c.buckets) {
			return c.buckets[s]
		}
		return newBucket()
	}
	var out []reports.Series
	out = append(out, mk(reports.SeriesOpRate, "ops/s", nil, func(s int) float64 { return b(s).sum["cache_fetches"] }))
	out = append(out, mk(reports.SeriesHitRatio, "ratio", nil, func(s int) float64 {
		h, m := b(s).sum["cache_hits"], b(s).sum["cache_misses"]
		if h+m == 0 {
			return math.NaN()
		}
		return h / (h + m)
	}))
	out = append(out, mk(reports.SeriesDBQueryRate, "queries/s", nil, func(s int) float64 { return b(s).sum["db_queries"] }))
	gauge := func(name string) func(int) float64 {
		return func(s int) float64 {
			m := b(s).gauges[name]
			if len(m) == 0 {
				return math.NaN()
			}
			t := 0.0
			for _, v := range m {
				t += v
			}
			return t
		}
	}
	out = append(out, mk(reports.SeriesConnections, "connections", nil, gauge("db_connections")))
	out = append(out, mk(reports.SeriesConnCap, "connections", nil, func(s int) float64 {
		m := b(s).gauges["db_max_connections"]
		v := math.NaN()
		for _, x := range m {
			v = x
		}
		return v
	}))
	classes := map[string]bool{}
	for _, bk := range c.buckets {
		for k := range bk.sum {
			if cl, ok := strings.CutPrefix(k, "firedrill_errors|"); ok {
				classes[cl] = true
			}
		}
	}
	for _, cl := range sortedKeys(classes) {
		out = append(out, mk(reports.SeriesErrorRate, "errors/s", map[string]string{"class": cl},
			func(s int) float64 { return b(s).sum["firedrill_errors|"+cl] }))
	}
	// Latency: exact from merged HDR intervals where the engine wrote them;
	// otherwise from the per-interval values k6 received.
	q := []struct {
		name string
		p    float64
	}{{reports.SeriesLatencyP50, 50}, {reports.SeriesLatencyP90, 90}, {reports.SeriesLatencyP99, 99}, {reports.SeriesLatencyMax, 100}}
	if hs := c.hist["cache_fetch"]; len(hs) > 0 {
		scale := unitToMS(c.unit["cache_fetch"])
		for _, qq := range q {
			out = append(out, mk(qq.name, "ms", nil, func(s int) float64 {
				if s >= len(hs) || hs[s] == nil || hs[s].TotalCount() == 0 {
					return math.NaN()
				}
				if qq.p == 100 {
					return float64(hs[s].Max()) * scale
				}
				return float64(hs[s].ValueAtQuantile(qq.p)) * scale
			}))
		}
	} else {
		for _, qq := range q {
			out = append(out, mk(qq.name, "ms", nil, func(s int) float64 { return quantile(b(s).trend["cache_fetch_ms"], qq.p) }))
		}
	}
	out = append(out, mk(reports.SeriesDBLatencyP99, "ms", nil, func(s int) float64 {
		if hs := c.hist["db_query"]; s < len(hs) && hs[s] != nil && hs[s].TotalCount() > 0 {
			return float64(hs[s].ValueAtQuantile(99)) * unitToMS(c.unit["db_query"])
		}
		return quantile(b(s).trend["db_query_ms"], 99)
	}))
	return out
}

// histograms merges the per-second HDR intervals over [from, to) seconds.
func (c *collector) histograms(from, to float64) map[string]reports.Histogram {
	out := map[string]reports.Histogram{}
	for metric, hs := range c.hist {
		var m *hdrhistogram.Histogram
		for s, h := range hs {
			if h == nil || float64(s) < math.Floor(from) || float64(s) >= to {
				continue
			}
			if m == nil {
				m = hdrhistogram.New(h.LowestTrackableValue(), h.HighestTrackableValue(), int(h.SignificantFigures()))
			}
			m.Merge(h)
		}
		if m == nil {
			continue
		}
		enc, err := m.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			continue
		}
		out[metric] = reports.Histogram{Unit: c.unit[metric], Encoded: string(enc)}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// responses are timeline events that are not faults: protections a drill
// sets (a statement time limit, a query killer) and an autoscaler's
// scaling. They stay on the timeline but do not split the run into phases,
// so a protected run reads before / during <fault> / after like its
// unprotected twin instead of "during statement_limit" from start to end.
var responses = map[string]bool{"statement_limit": true, "query_killer": true, "scale": true}

// phases splits the run at fault injections and removals: before the first
// fault, during each fault window, and after the last one.
func (c *collector) phases(series []reports.Series, length float64) []reports.Phase {
	type window struct {
		name     string
		from, to float64
	}
	var ws []window
	open := map[string]float64{}
	first, last := length, 0.0
	faults := 0
	// k6 writes each VU's samples as it flushes them, so a remove can come
	// before an inject of another scenario that happened earlier.
	events := append([]reports.FaultEvent(nil), c.events...)
	sort.SliceStable(events, func(i, j int) bool { return events[i].At < events[j].At })
	for _, e := range events {
		if responses[e.Fault] {
			continue
		}
		faults++
		key := e.Fault + " " + e.Target + " " + e.Name
		switch e.Action {
		case "inject":
			open[key] = e.At
			first = math.Min(first, e.At)
		case "remove":
			if at, ok := open[key]; ok {
				ws = append(ws, window{"during " + strings.TrimSpace(e.Fault+" "+e.Target), at, e.At})
				delete(open, key)
				last = math.Max(last, e.At)
			}
		}
	}
	for key, at := range open {
		f := strings.Fields(key)
		ws = append(ws, window{"during " + strings.Join(f[:min(2, len(f))], " "), at, length})
		last = length
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].from < ws[j].from })
	ws = mergeWindows(ws, func(w window) (string, float64, float64) { return w.name, w.from, w.to },
		func(w window, name string) window { w.name = name; return w })
	var out []reports.Phase
	if faults == 0 {
		ws = []window{{"whole run", 0, length}}
	} else {
		ws = append([]window{{"before", 0, first}}, ws...)
		if last < length {
			ws = append(ws, window{"after", last, length})
		}
	}
	for _, w := range ws {
		if w.to <= w.from {
			continue
		}
		out = append(out, reports.Phase{Name: w.name, From: w.from, To: w.to,
			Summary: summarize(series, w.from, w.to), Histograms: c.histograms(w.from, w.to)})
	}
	// Recovery belongs to the time after the trigger: the last phase.
	if v, ok := c.recovery["firedrill_recovered"]; ok && len(out) > 0 {
		last := out[len(out)-1].Summary
		last[reports.SummaryRecovered] = v
		if s, ok := c.recovery["firedrill_recovery_s"]; ok && v > 0 {
			last[reports.SummaryRecovery] = s
		}
	}
	return out
}

// summarize is the mean of each series over [from, to), plus peaks where a
// peak is what matters (database query rate, latency, connections).
func summarize(series []reports.Series, from, to float64) map[string]float64 {
	out := map[string]float64{}
	for _, s := range series {
		name := s.Metric
		if cl := s.Tags["class"]; cl != "" {
			name += "{" + cl + "}"
		}
		sum, n, peak := 0.0, 0, math.Inf(-1)
		for i, v := range s.Values {
			t := float64(i) * s.Step
			if t < math.Floor(from) || t >= to || math.IsNaN(float64(v)) {
				continue
			}
			sum += float64(v)
			n++
			peak = math.Max(peak, float64(v))
		}
		if n == 0 {
			continue
		}
		out[name+"_mean"] = round(sum / float64(n))
		out[name+"_peak"] = round(peak)
	}
	return out
}

func round(v float64) float64 { return math.Round(v*1000) / 1000 }

func unitToMS(unit string) float64 {
	switch unit {
	case "ns":
		return 1e-6
	case "ms":
		return 1
	case "s":
		return 1000
	default: // microseconds, the engine's unit
		return 1e-3
	}
}

func quantile(vs []float64, p float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

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

// mergeWindows folds fault windows of the same fault that start and end
// within a second of each other (one toxic put on every proxy at once) into
// one phase naming all their targets.
func mergeWindows[W any](ws []W, get func(W) (string, float64, float64), rename func(W, string) W) []W {
	var out []W
	var targets [][]string
	for _, w := range ws {
		name, from, to := get(w)
		kind, target, _ := strings.Cut(strings.TrimPrefix(name, "during "), " ")
		merged := false
		for i, o := range out {
			oname, ofrom, oto := get(o)
			okind, _, _ := strings.Cut(strings.TrimPrefix(oname, "during "), " ")
			if okind == kind && math.Abs(ofrom-from) < 1 && math.Abs(oto-to) < 1 {
				targets[i] = append(targets[i], target)
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, w)
			targets = append(targets, []string{target})
		}
	}
	for i := range out {
		name, _, _ := get(out[i])
		kind, _, _ := strings.Cut(strings.TrimPrefix(name, "during "), " ")
		if len(targets[i]) > 1 {
			out[i] = rename(out[i], "during "+kind+" "+strings.Join(targets[i], ", "))
		}
	}
	return out
}
