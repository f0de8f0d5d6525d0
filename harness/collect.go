package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/firedrill-dev/firedrill/faults"
	"github.com/firedrill-dev/firedrill/reports"
	"github.com/firedrill-dev/firedrill/traffic"
)

// k6Point is one line of k6's JSON output.
type k6Point struct {
	Type   string `json:"type"`
	Metric string `json:"metric"`
	Data   struct {
		Time  time.Time         `json:"time"`
		Value float64           `json:"value"`
		Tags  map[string]string `json:"tags"`
		Type  string            `json:"type"` // of a "Metric" line
	} `json:"data"`
}

// tickSpan is the collector's resolution: k6 samples are grouped by the
// 100 ms interval of their time, the traffic engine's push interval and its
// ledger's bucket.
const tickSpan = 0.1

func tickOf(t time.Time) int64 { return t.UnixMilli() / 100 }

// tick is what k6 samples said in one 100 ms interval: counters summed and
// gauges' last values, by series (metric and tags).
type tick struct {
	sums, last map[string]float64
}

// ledgerTick is the traffic engine's ledger for one 100 ms bucket of due
// times: outcome counts, and latency histograms as their non-zero cells.
type ledgerTick struct {
	counts map[string]int64
	hist   map[string][]cell
}

// cell is one non-zero cell of an HDR histogram's flat counts array. Every
// ledger histogram has the engine's one geometry, so cells of many buckets
// add up into one histogram exactly, without a histogram per bucket in
// memory.
type cell struct {
	idx int32
	n   int64
}

// The engine's histogram geometry (traffic.newHist).
const (
	histLowest  = 1
	histHighest = 60_000_000
	histDigits  = 3
)

// histCells is the length of the engine geometry's flat counts array.
var histCells = len(hdrhistogram.New(histLowest, histHighest, histDigits).Export().Counts)

// rawEvent is a timeline event at its wall-clock time.
type rawEvent struct {
	at time.Time
	reports.FaultEvent
	marker bool
}

// collector turns k6's samples and the engine's ledger into a Result's
// time origin, series, events, phases, per-phase statistics and
// histograms. It reads everything first; finish() then places time zero at
// the start of traffic.
type collector struct {
	fallback time.Time // time zero when no replay marked the start of traffic
	types    map[string]string
	ticks    map[int64]*tick
	ledger   map[int64]*ledgerTick
	raw      []rawEvent
	// servers holds the sampler's readings of the servers' own counters,
	// nil when the run had no sampler.
	servers *serverData

	ids map[string]seriesID // parsed series keys

	// set by finish
	tkeys, lkeys []int64 // ticks and ledger buckets, in time order
	origin       time.Time
	end          float64 // seconds: end of traffic
	events       []reports.FaultEvent
	open         []string // faults injected and never removed
	// recovery is the drill's recovery rule judged (fill), nil without one
	recovery *reports.Recovery
	// http are the requests of a drill that drives a service under test
	// with k6/http, sorted by start after finish
	http []httpReq
	// tenants is what the harness read from the tenant tables at the end
	// of the run, for the integrity checks; nil when it could not read
	tenants *tenantSnapshot
}

func newCollector(fallback time.Time) *collector {
	return &collector{fallback: fallback, types: map[string]string{}, ticks: map[int64]*tick{}, ledger: map[int64]*ledgerTick{}, ids: map[string]seriesID{}}
}

// readSamples reads k6's --out json file (plain or .gz).
func (c *collector) readSamples(path string) error {
	return scanSamples(path, func(line []byte) {
		var p k6Point
		if err := json.Unmarshal(line, &p); err != nil {
			return
		}
		switch p.Type {
		case "Metric":
			c.types[p.Metric] = p.Data.Type
		case "Point":
			c.add(p)
		}
	})
}

func (c *collector) add(p k6Point) {
	tags := p.Data.Tags
	if p.Metric == faultMetric {
		c.raw = append(c.raw, rawEvent{at: p.Data.Time, marker: tags["marker"] == "true", FaultEvent: reports.FaultEvent{
			Fault: tags["fault"], Action: tags["action"], Target: tags["target"], Name: tags["name"],
		}})
		return
	}
	if p.Metric == httpDurationMetric {
		c.addHTTP(p)
		return
	}
	typ := c.types[p.Metric]
	if typ == "" {
		typ = knownTypes[p.Metric]
	}
	if typ != "counter" && typ != "gauge" {
		return // trends: the ledger holds the exact distributions
	}
	k := tickOf(p.Data.Time)
	t := c.ticks[k]
	if t == nil {
		t = &tick{sums: map[string]float64{}, last: map[string]float64{}}
		c.ticks[k] = t
	}
	key := p.Metric + "{" + tagKey(tags) + "}"
	if _, ok := c.ids[key]; !ok {
		c.ids[key] = seriesID{metric: p.Metric, tags: filterTags(tags)}
	}
	if typ == "counter" {
		t.sums[key] += p.Data.Value
	} else {
		t.last[key] = p.Data.Value
	}
}

const faultMetric = "firedrill_fault"

// k6DroppedIterations counts the iterations an arrival-rate scenario could
// not start for want of a free VU: requests the drill never sent.
const k6DroppedIterations = "dropped_iterations"

// knownTypes are the engine's metric types, for sample files whose
// "Metric" lines were lost (a merge of partial files).
var knownTypes = func() map[string]string {
	m := map[string]string{}
	for name, k := range traffic.MetricKinds() {
		switch k {
		case traffic.Counter:
			m[name] = "counter"
		case traffic.Gauge:
			m[name] = "gauge"
		}
	}
	// k6 writes a metric's declaration with its first sample: a run
	// that dropped no iteration has none, and counted zero.
	m[k6DroppedIterations] = "counter"
	return m
}()

// seriesID is a series key's metric and tags.
type seriesID struct {
	metric string
	tags   map[string]string
}

// ignoredTags are on every sample of a scenario: they do not tell series
// apart. (generator does: a gauge of each generator is its own series, and
// the fleet's value is their sum.)
var ignoredTags = map[string]bool{"scenario": true, "group": true}

func filterTags(tags map[string]string) map[string]string {
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		if !ignoredTags[k] {
			out[k] = v
		}
	}
	return out
}

// tagKey is a series' tags in a stable order, without the ones every
// sample of a scenario carries.
func tagKey(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		if ignoredTags[k] {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(k + "=" + tags[k])
	}
	return sb.String()
}

// readLedger reads the engine's ledger file (FIREDRILL_HDR_OUT). A missing
// file is a drill without an engine replay: nothing to read.
func (c *collector) readLedger(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read ledger: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		var l traffic.LedgerLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("read ledger %s line %d: %w", path, n, err)
		}
		k := int64(math.Round(l.T * 10))
		lt := c.ledger[k]
		if lt == nil {
			lt = &ledgerTick{counts: map[string]int64{}, hist: map[string][]cell{}}
			c.ledger[k] = lt
		}
		for name, v := range l.Counts {
			lt.counts[name] += v
		}
		if l.Encoded == "" {
			continue
		}
		h, err := hdrhistogram.Decode([]byte(l.Encoded))
		if err != nil {
			return fmt.Errorf("read ledger %s line %d: %w", path, n, err)
		}
		if h.LowestTrackableValue() != histLowest || h.HighestTrackableValue() != histHighest || h.SignificantFigures() != histDigits {
			return fmt.Errorf("read ledger %s line %d: histogram geometry %d..%d/%d, want the engine's %d..%d/%d", path, n,
				h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures(), histLowest, histHighest, histDigits)
		}
		counts := h.Export().Counts
		cs := lt.hist[l.Metric]
		for i, v := range counts {
			if v != 0 {
				cs = append(cs, cell{int32(i), v})
			}
		}
		lt.hist[l.Metric] = cs
	}
	return sc.Err()
}

// finish places time zero at the first start of traffic (else at the
// fallback), turns the events into offsets from it, and finds the end of
// traffic.
func (c *collector) finish() {
	sort.SliceStable(c.raw, func(i, j int) bool { return c.raw[i].at.Before(c.raw[j].at) })
	c.origin = c.fallback
	var ends []time.Time
	marked := false
	for _, e := range c.raw {
		if e.Fault != faults.Traffic || !e.marker {
			continue
		}
		marked = true
		if e.Action == reports.Inject && (c.origin == c.fallback || e.at.Before(c.origin)) {
			c.origin = e.at
		}
		if e.Action == reports.Remove {
			ends = append(ends, e.at)
		}
	}
	if c.hasHTTP() && !marked {
		c.finishHTTP(false)
	}
	// A fault put in place before traffic started is how the drill set
	// up its environment (a connection cap, say), not a fault of the run:
	// it and its removal are markers, and "before" is not empty.
	setUp := map[string]bool{}
	for _, e := range c.raw {
		if !e.marker && e.Action == reports.Inject && e.at.Before(c.origin) {
			setUp[e.Fault+" "+e.Target+" "+e.Name] = true
		}
	}
	c.events = nil
	open := map[string]bool{}
	for _, e := range c.raw {
		ev := e.FaultEvent
		ev.At = round(max(0, e.at.Sub(c.origin).Seconds()))
		e.marker = e.marker || setUp[ev.Fault+" "+ev.Target+" "+ev.Name]
		ev.Marker = e.marker
		c.events = append(c.events, ev)
		if !e.marker {
			key := ev.Fault + " " + ev.Target + " " + ev.Name
			open[key] = ev.Action == reports.Inject
		}
	}
	c.open = nil
	for k, o := range open {
		if o {
			c.open = append(c.open, strings.TrimSpace(k))
		}
	}
	sort.Strings(c.open)
	if len(ends) > 0 {
		c.end = slices.MaxFunc(ends, func(a, b time.Time) int { return a.Compare(b) }).Sub(c.origin).Seconds()
	} else if !c.hasHTTP() || marked {
		// (an HTTP drill's end is its last request's start: finishHTTP)
		// no replay: the last sample or ledger bucket ends the run
		for k := range c.ticks {
			c.end = max(c.end, c.rel(k)+tickSpan)
		}
		for k := range c.ledger {
			c.end = max(c.end, c.rel(k)+tickSpan)
		}
		for _, e := range c.events {
			c.end = max(c.end, e.At)
		}
	}
	c.end = round(c.end)
	if c.hasHTTP() {
		sort.Slice(c.http, func(i, j int) bool { return c.http[i].start < c.http[j].start })
		o := float64(c.origin.UnixNano()) / 1e9
		for i := range c.http {
			c.http[i].rel = c.http[i].start - o
		}
	}
	if c.servers != nil {
		c.servers.finish(c.origin)
	}
	c.tkeys = slices.Sorted(maps.Keys(c.ticks))
	c.lkeys = slices.Sorted(maps.Keys(c.ledger))
}

// within returns the keys (sorted ticks) whose midpoint lies in w. A
// window from time zero also takes what came before it (the first bucket
// of due times straddles the start of traffic), and one to the end of
// traffic what came after, so phases that cover the run lose nothing.
func (c *collector) within(keys []int64, w span) []int64 {
	if w.from <= 0 {
		w.from = math.Inf(-1)
	}
	if w.to >= c.end {
		w.to = math.Inf(1)
	}
	lo := sort.Search(len(keys), func(i int) bool { return c.rel(keys[i])+tickSpan/2 >= w.from })
	hi := sort.Search(len(keys), func(i int) bool { return c.rel(keys[i])+tickSpan/2 >= w.to })
	if hi < lo {
		return nil
	}
	return keys[lo:hi]
}

// rel is the offset of a tick's start from time zero, in seconds.
func (c *collector) rel(k int64) float64 {
	return float64(k)*tickSpan - float64(c.origin.UnixNano())/1e9
}

// span is a window of the run, in seconds from time zero.
type span struct{ from, to float64 }

func (s span) length() float64 { return s.to - s.from }

// sumOf adds the counter samples of metric whose tags include sel, over w.
func (c *collector) sumOf(metric string, sel map[string]string, w span) (float64, bool) {
	var sum float64
	seen := false
	for _, k := range c.within(c.tkeys, w) {
		for key, v := range c.ticks[k].sums {
			if c.matches(key, metric, sel) {
				sum += v
				seen = true
			}
		}
	}
	return sum, seen
}

// gaugeAt is a gauge's value in tick t: the sum over its matching series
// (db_connections is one series per process).
func (c *collector) gaugeAt(t *tick, metric string, sel map[string]string) (float64, bool) {
	var v float64
	seen := false
	for key, x := range t.last {
		if c.matches(key, metric, sel) {
			v += x
			seen = true
		}
	}
	return v, seen
}

// lastGauge is a gauge's last value in w; peakGauge its highest.
func (c *collector) lastGauge(metric string, sel map[string]string, w span) (float64, bool) {
	ks := c.within(c.tkeys, w)
	for i := len(ks) - 1; i >= 0; i-- {
		if v, ok := c.gaugeAt(c.ticks[ks[i]], metric, sel); ok {
			return v, true
		}
	}
	return 0, false
}

func (c *collector) peakGauge(metric string, sel map[string]string, w span) (float64, bool) {
	peak, seen := math.Inf(-1), false
	for _, k := range c.within(c.tkeys, w) {
		if v, ok := c.gaugeAt(c.ticks[k], metric, sel); ok {
			peak, seen = max(peak, v), true
		}
	}
	return peak, seen
}

// busiestSecond is a counter's largest sum over any second inside w,
// slid tick by tick: a burst that straddles a clock second is not split in
// two (a hot set's expiry, about 0.2 s of fills, read anywhere from half
// to all of its size in whole seconds). A w shorter than a second gives its
// sum scaled to one.
func (c *collector) busiestSecond(metric string, sel map[string]string, w span) (float64, bool) {
	sums, ok := c.tickSums(metric, sel, w)
	if !ok {
		return 0, false
	}
	return busiest(sums), true
}

// busiest is the largest sum of any 10 ticks in a row of sums, or the
// mean rate when there are fewer.
func busiest(sums []float64) float64 {
	n := len(sums)
	win := int(math.Round(1 / tickSpan))
	if n < win {
		var t float64
		for _, v := range sums {
			t += v
		}
		return t / (float64(n) * tickSpan)
	}
	var cur, peak float64
	for i, v := range sums {
		cur += v
		if i >= win {
			cur -= sums[i-win]
		}
		if i >= win-1 {
			peak = max(peak, cur)
		}
	}
	return peak
}

// burst is the busiest second (busiestSecond) less the phase's median
// whole second, counted from its start: what a burst adds to the phase's
// own steady state, which a peak alone carries as a floor (the busiest
// second of a protection that cuts a stampede to one fill per key is
// mostly the steady load around it). It needs three whole seconds.
func (c *collector) burst(metric string, sel map[string]string, w span) (float64, bool) {
	sums, ok := c.tickSums(metric, sel, w)
	win := int(math.Round(1 / tickSpan))
	if !ok || len(sums) < 3*win {
		return 0, false
	}
	secs := make([]float64, len(sums)/win)
	for i := range secs {
		for _, v := range sums[i*win : (i+1)*win] {
			secs[i] += v
		}
	}
	slices.Sort(secs)
	median := secs[len(secs)/2]
	if len(secs)%2 == 0 {
		median = (secs[len(secs)/2-1] + median) / 2
	}
	return max(0, busiest(sums)-median), true
}

// tickSums sums metric's samples matching sel in each 100 ms tick of w.
func (c *collector) tickSums(metric string, sel map[string]string, w span) ([]float64, bool) {
	n := int(math.Round(w.length() / tickSpan)) // ticks of w
	ks := c.within(c.tkeys, w)
	if len(ks) == 0 || n <= 0 {
		return nil, false
	}
	sums := make([]float64, n)
	for _, k := range ks {
		// within reaches back before time zero for a phase from 0: such
		// ticks are setup's, no second of the phase's
		i := int(math.Floor((c.rel(k) + tickSpan/2 - w.from) / tickSpan))
		if i < 0 || i >= n {
			continue
		}
		for key, v := range c.ticks[k].sums {
			if c.matches(key, metric, sel) {
				sums[i] += v
			}
		}
	}
	return sums, true
}

// matches says whether the series key is metric with every tag of sel.
func (c *collector) matches(key, metric string, sel map[string]string) bool {
	id := c.ids[key]
	if id.metric != metric {
		return false
	}
	for k, v := range sel {
		if id.tags[k] != v {
			return false
		}
	}
	return true
}

// ledgerSum adds ledger counts over w: the keys op.outcome (op "" for
// every op), or op.failed.class.
func (c *collector) ledgerSum(w span, op, name string) int64 {
	var n int64
	for _, k := range c.within(c.lkeys, w) {
		for key, v := range c.ledger[k].counts {
			o, rest, _ := strings.Cut(key, ".")
			if rest == name && (op == "" || o == op) {
				n += v
			}
		}
	}
	return n
}

// hasLedger says whether the engine wrote a ledger at all.
func (c *collector) hasLedger() bool { return len(c.ledger) > 0 }

// histogram merges the ledger's histogram metric over w (nil when empty).
func (c *collector) histogram(metric string, w span) *hdrhistogram.Histogram {
	var counts []int64
	for _, k := range c.within(c.lkeys, w) {
		cs := c.ledger[k].hist[metric]
		if len(cs) == 0 {
			continue
		}
		if counts == nil {
			counts = make([]int64, histCells)
		}
		for _, x := range cs {
			counts[x.idx] += x.n
		}
	}
	if counts == nil {
		return nil
	}
	return hdrhistogram.Import(&hdrhistogram.Snapshot{
		LowestTrackableValue: histLowest, HighestTrackableValue: histHighest, SignificantFigures: histDigits, Counts: counts,
	})
}
