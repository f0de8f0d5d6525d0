package harness

import (
	"maps"
	"math"
	"slices"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/firedrill-dev/firedrill/reports"
	"github.com/firedrill-dev/firedrill/traffic"
)

// series builds the result's 1 s series from time zero to the end of
// traffic: operations and latency by the second they arrived in (the
// ledger), everything else by the second it was counted in.
func (c *collector) series() []reports.Series {
	n := int(math.Ceil(c.end))
	if c.hasHTTP() && !c.hasLedger() {
		return append(c.httpSeries(n), c.serverSeriesOut(n)...)
	}
	mk := func(metric, unit string, tags map[string]string, f func(w span) (float64, bool)) reports.Series {
		vs := make([]reports.Float, n)
		for i := range vs {
			v, ok := f(span{float64(i), float64(i + 1)})
			if !ok || math.IsInf(v, 0) {
				v = math.NaN()
			}
			vs[i] = reports.Float(v)
		}
		return reports.Series{Metric: metric, Unit: unit, Tags: tags, Step: 1, Values: vs}
	}
	metric := func(name string, sel map[string]string) func(span) (float64, bool) {
		return func(w span) (float64, bool) { return c.metric(name, sel, w) }
	}
	out := []reports.Series{
		mk(reports.SeriesOpRate, "ops/s", nil, metric("offered", nil)),
		mk(reports.SeriesServedRate, "ops/s", nil, func(w span) (float64, bool) {
			s, ok := c.metric("served", nil, w)
			st, _ := c.metric("stale", nil, w)
			return s + st, ok
		}),
		mk(reports.SeriesHitRatio, "ratio", nil, metric("hit_ratio", nil)),
		mk(reports.SeriesDBQueryRate, "queries/s", nil, func(w span) (float64, bool) {
			v, ok := c.sumOf(traffic.MetricDBQueries, nil, w)
			return v, ok
		}),
		mk(reports.SeriesConnections, "connections", nil, func(w span) (float64, bool) {
			return c.lastGauge(traffic.MetricDBConns, nil, w)
		}),
		mk(reports.SeriesConnCap, "connections", nil, func(w span) (float64, bool) {
			return c.lastGauge("db_max_connections", nil, w)
		}),
	}
	classes := map[string]bool{}
	for key, id := range c.ids {
		if id.metric == traffic.MetricErrors && strings.HasPrefix(key, traffic.MetricErrors+"{") {
			classes[cmpOr(id.tags["class"], "other")] = true
		}
	}
	for _, cl := range slices.Sorted(maps.Keys(classes)) {
		sel := map[string]string{"class": cl}
		out = append(out, mk(reports.SeriesErrorRate, "errors/s", sel, func(w span) (float64, bool) {
			v, _ := c.sumOf(traffic.MetricErrors, sel, w)
			return v, true
		}))
	}
	// Latency of the operations that arrived in each second and finished.
	q := []struct {
		name string
		p    float64
	}{{reports.SeriesLatencyP50, 50}, {reports.SeriesLatencyP90, 90}, {reports.SeriesLatencyP99, 99}, {reports.SeriesLatencyMax, 100}}
	hists := make([]*hdrhistogram.Histogram, n)
	dbs := make([]*hdrhistogram.Histogram, n)
	for i := range hists {
		w := span{float64(i), float64(i + 1)}
		hists[i], dbs[i] = c.histogram("fetch", w), c.histogram("db", w)
	}
	for _, qq := range q {
		out = append(out, mk(qq.name, "ms", nil, func(w span) (float64, bool) {
			h := hists[int(w.from)]
			if h == nil || h.TotalCount() == 0 {
				return 0, false
			}
			if qq.p == 100 {
				return float64(h.Max()) / 1000, true
			}
			return float64(h.ValueAtQuantile(qq.p)) / 1000, true
		}))
	}
	out = append(out, mk(reports.SeriesDBLatencyP99, "ms", nil, func(w span) (float64, bool) {
		h := dbs[int(w.from)]
		if h == nil || h.TotalCount() == 0 {
			return 0, false
		}
		return float64(h.ValueAtQuantile(99)) / 1000, true
	}))
	return append(out, c.serverSeriesOut(n)...)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// encodedHistograms are the ledger's histograms over w, encoded so that
// results of several generators or runs merge exactly.
func (c *collector) encodedHistograms(w span) map[string]reports.Histogram {
	out := map[string]reports.Histogram{}
	if c.hasHTTP() {
		if h := c.httpHistogram(nil, w); h != nil && h.TotalCount() > 0 {
			if enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err == nil {
				out[reports.HistHTTP] = reports.Histogram{Unit: "us", Encoded: string(enc)}
			}
		}
	}
	for _, name := range traffic.HistNames {
		h := c.histogram(name, w)
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			continue
		}
		out[name] = reports.Histogram{Unit: "us", Encoded: string(enc)}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// fill sets res's events, series, phases, checks, histograms and verdict
// from what the collector read: the drill's spec judged on exact data.
func (c *collector) fill(res *reports.Result, spec *Spec) {
	c.finish()
	res.Events = c.events
	res.Series = c.series()
	ps := c.phases(spec)
	if spec != nil {
		c.recovery = c.judgeRecovery(spec.Recovery, ps)
		res.Recovery = c.recovery
	}
	res.Phases = nil
	for _, p := range ps {
		res.Phases = append(res.Phases, reports.Phase{
			Name: p.name, Kind: p.kind, Targets: p.targets, From: round(p.w.from), To: round(p.w.to),
			Summary: c.summary(p.w), Histograms: c.encodedHistograms(p.w),
		})
	}
	if run, ok := findPhase(ps, phaseRun); ok {
		res.Histograms = c.encodedHistograms(run.w)
	}
	res.Sampling = c.coverage()
	if v, ok := c.lastGauge(metricCapacity, nil, span{math.Inf(-1), math.Inf(1)}); ok {
		res.Environment.DBCapacity = roundSig(v)
	}
	res.Checks = c.judge(spec, res.Profile, ps)
	if spec == nil {
		return
	}
	res.Verdict.Reached, res.Verdict.Reason, res.Verdict.Observed, res.Verdict.NotObserved = decide(res.Verdict.Expected, res.Checks)
	res.Verdict.Pass = res.Verdict.Reached == res.Verdict.Expected
}

// metricCapacity is the gauge cache.calibrate sets: the database's
// capacity for the drill's fills, recorded in the result's environment.
const metricCapacity = "firedrill_db_capacity"
