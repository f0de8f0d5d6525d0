package harness

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/firedrill-dev/firedrill/reports"
)

// HTTP drills: a drill that drives a service under test with k6's own
// k6/http has no engine ledger. Its exact data is k6's: every request's
// http_req_duration sample is in k6-samples.json.gz with its time, so the
// collector keeps each request and judges a phase on the requests that
// started in it (the sample's time, when the response ended, less its
// duration), as the ledger judges operations by their due time.

// httpReq is one request k6 made.
type httpReq struct {
	start  float64 // unix seconds, when it was sent
	ms     float64 // http_req_duration
	status int     // 0 when no response came (timeout, refused)
	class  string  // served, shed, timeout or error
	tags   map[string]string
	rel    float64 // start from time zero (set by finish)
}

const (
	httpDurationMetric = "http_req_duration"
	// k6's error code for a request that hit its timeout.
	k6RequestTimeout = "1050"
)

// HTTP request classes, for {class=...}.
const (
	httpServed  = "served"  // a 2xx or 3xx answer
	httpShed    = "shed"    // 503 or 429: the service turned it away
	httpTimeout = "timeout" // no answer within k6's request timeout
	httpError   = "error"   // any other failure: 4xx, 5xx, a refused connection
)

// httpTagsKept are the k6 tags a check may select requests by (besides
// class); url and the like would make every request its own.
var httpTagsDropped = map[string]bool{"url": true, "proto": true, "tls_version": true, "scenario": true, "group": true,
	"ip": true, "vu": true, "iter": true}

func classify(status int, errCode string) string {
	switch {
	case status >= 200 && status < 400:
		return httpServed
	case status == 503 || status == 429:
		return httpShed
	case status == 0 && errCode == k6RequestTimeout:
		return httpTimeout
	}
	return httpError
}

func (c *collector) addHTTP(p k6Point) {
	// Requests of setup (warming a cache) and teardown are not traffic.
	if g := p.Data.Tags["group"]; g == "::setup" || g == "::teardown" {
		return
	}
	status, _ := strconv.Atoi(p.Data.Tags["status"])
	tags := map[string]string{}
	for k, v := range p.Data.Tags {
		if !httpTagsDropped[k] {
			tags[k] = v
		}
	}
	end := float64(p.Data.Time.UnixNano()) / 1e9
	c.http = append(c.http, httpReq{start: end - p.Data.Value/1000, ms: p.Data.Value, status: status,
		class: classify(status, p.Data.Tags["error_code"]), tags: tags})
}

// hasHTTP says whether the run made HTTP requests.
func (c *collector) hasHTTP() bool { return len(c.http) > 0 }

// finishHTTP sorts the requests by start. Without a replay's start
// marker, time zero is the first request's start and the end of traffic
// the last one's: an arrival-rate scenario starts its first iteration
// when the scenario starts, the instant its faults' startTime counts from.
func (c *collector) finishHTTP(hasTrafficMarker bool) {
	sort.Slice(c.http, func(i, j int) bool { return c.http[i].start < c.http[j].start })
	if len(c.http) == 0 || hasTrafficMarker {
		return
	}
	first := c.http[0].start
	c.origin = time.Unix(0, int64(first*1e9))
	c.end = round(c.http[len(c.http)-1].start - first + tickSpan)
}

// httpIn are the requests that started in w (w from time zero also takes
// the requests before it; to the end of traffic, those after).
func (c *collector) httpIn(w span) []httpReq {
	if w.from <= 0 {
		w.from = math.Inf(-1)
	}
	if w.to >= c.end {
		w.to = math.Inf(1)
	}
	lo := sort.Search(len(c.http), func(i int) bool { return c.http[i].rel >= w.from })
	hi := sort.Search(len(c.http), func(i int) bool { return c.http[i].rel >= w.to })
	if hi < lo {
		return nil
	}
	return c.http[lo:hi]
}

func (r httpReq) matches(sel map[string]string) bool {
	for k, v := range sel {
		if k == "class" {
			if r.class != v {
				return false
			}
			continue
		}
		if r.tags[k] != v {
			return false
		}
	}
	return true
}

// httpHistogram is the latency (µs) of the requests of w that match sel,
// in the engine's histogram geometry, so it merges with any other.
func (c *collector) httpHistogram(sel map[string]string, w span) *hdrhistogram.Histogram {
	var h *hdrhistogram.Histogram
	for _, r := range c.httpIn(w) {
		if !r.matches(sel) {
			continue
		}
		if h == nil {
			h = hdrhistogram.New(histLowest, histHighest, histDigits)
		}
		_ = h.RecordValue(min(max(int64(r.ms*1000), histLowest), histHighest))
	}
	return h
}

// httpMetric is an http_* metric over w: see the README's table.
func (c *collector) httpMetric(name string, sel map[string]string, w span) (float64, bool) {
	if !c.hasHTTP() {
		return 0, false
	}
	count := func(class string) (n, total int) {
		for _, r := range c.httpIn(w) {
			if !r.matches(sel) {
				continue
			}
			total++
			if class == "" || r.class == class || (class == "failed" && r.class != httpServed) {
				n++
			}
		}
		return n, total
	}
	stat, _ := strings.CutPrefix(name, "http_")
	if base, ok := strings.CutSuffix(stat, "_ratio"); ok {
		cl := base
		if cl != "served" && cl != "shed" && cl != "timeout" && cl != "failed" && cl != "error" {
			return 0, false
		}
		n, total := count(cl)
		if total == 0 {
			return 0, false
		}
		return float64(n) / float64(total), true
	}
	switch stat {
	case "offered":
		_, total := count("")
		return float64(total), true
	case "rate":
		if w.length() <= 0 {
			return 0, false
		}
		_, total := count("")
		return float64(total) / w.length(), true
	case "served", "shed", "timeout", "failed", "error":
		n, _ := count(stat)
		return float64(n), true
	}
	switch {
	case stat == "max", stat == "mean", stat == "count":
	case len(stat) > 1 && stat[0] == 'p':
		if _, err := percentile(stat); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	h := c.httpHistogram(sel, w)
	if h == nil || h.TotalCount() == 0 {
		return 0, false
	}
	switch stat {
	case "count":
		return float64(h.TotalCount()), true
	case "max":
		return float64(h.Max()) / 1000, true
	case "mean":
		return h.Mean() / 1000, true
	}
	p, _ := percentile(stat)
	return float64(h.ValueAtQuantile(p)) / 1000, true
}

// httpSeries are an HTTP drill's 1 s series under the names the report
// draws for the engine's (operations, served, latency percentiles, errors
// by class), requests by the second they started in; its database query
// rate is the database's own count of the traffic user's SELECTs, the
// only count there is of the service's queries.
func (c *collector) httpSeries(n int) []reports.Series {
	mk := func(metric, unit string, tags map[string]string, f func(w span) (float64, bool)) reports.Series {
		vs := make([]reports.Float, n)
		for i := range vs {
			v, ok := f(span{float64(i), float64(i + 1)})
			if !ok || math.IsInf(v, 0) {
				v = math.NaN()
			}
			vs[i] = reports.Float(roundSig(v))
		}
		return reports.Series{Metric: metric, Unit: unit, Tags: tags, Step: 1, Values: vs}
	}
	metric := func(name string, sel map[string]string) func(span) (float64, bool) {
		return func(w span) (float64, bool) { return c.httpMetric(name, sel, w) }
	}
	out := []reports.Series{
		mk(reports.SeriesOpRate, "req/s", nil, metric("http_offered", nil)),
		mk(reports.SeriesServedRate, "req/s", nil, metric("http_served", nil)),
		mk(reports.SeriesLatencyP50, "ms", nil, metric("http_p50", nil)),
		mk(reports.SeriesLatencyP90, "ms", nil, metric("http_p90", nil)),
		mk(reports.SeriesLatencyP99, "ms", nil, metric("http_p99", nil)),
		mk(reports.SeriesLatencyMax, "ms", nil, metric("http_max", nil)),
	}
	seen := map[string]bool{}
	for _, r := range c.http {
		seen[r.class] = true
	}
	for _, cl := range []string{httpShed, httpTimeout, httpError} {
		if !seen[cl] {
			continue
		}
		sel := map[string]string{"class": cl}
		out = append(out, mk(reports.SeriesErrorRate, "req/s", sel, func(w span) (float64, bool) {
			v, _ := c.httpMetric("http_offered", sel, w)
			return v, true
		}))
	}
	if c.servers != nil {
		out = append(out, mk(reports.SeriesDBQueryRate, "queries/s", nil, func(w span) (float64, bool) {
			return c.serverMetric(mDBUserSelect+statRate, nil, w)
		}))
		out = append(out, mk(reports.SeriesHitRatio, "ratio", nil, func(w span) (float64, bool) {
			return c.serverMetric(mcHitRatio, nil, w)
		}))
	}
	return out
}
