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

	"github.com/firedrill-dev/firedrill/reports"
)

// The servers' own counters in the collector. The sampler's readings are
// running totals and gauge values, each with its own time. A counter's
// increment between two readings is spread evenly over the time between
// them, so a window takes the share that fell inside it: sums over the run
// are exact, and a second holds what the server counted in it whether the
// reading came early or late in it. A counter that went down was reset (a
// restarted server): the new value is what it counted since.

// serverData is what the sampler's file held.
type serverData struct {
	sources    map[string]*sourceData
	order      []string // sources as declared
	series     map[string]*serverSeries
	userCounts string // how the database source counted the traffic user
	interval   float64
}

// sourceData is one source's declaration and the times it was read.
type sourceData struct {
	name, note string
	times      []time.Time // the ticks its readings served
	rel        []float64   // times from time zero, sorted (set by finish)
	errors     int
	firstErr   string
}

// serverSeries is one metric of one source (its tags tell which).
type serverSeries struct {
	metric  string
	tags    map[string]string
	counter bool
	raw     []rawReading
	// pts are, for a counter, its increments over (from, to]; for a
	// gauge, its values at to (from == to). Seconds from time zero.
	pts []serverPoint
}

type rawReading struct {
	t time.Time
	v float64
}

type serverPoint struct{ from, to, v float64 }

// readServers reads the sampler's file. A missing file is a run without a
// sampler (a merge of a k6-operator's generators): nothing to read.
func (c *collector) readServers(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read server samples: %w", err)
	}
	defer f.Close()
	if c.servers == nil {
		c.servers = &serverData{sources: map[string]*sourceData{}, series: map[string]*serverSeries{}}
	}
	sd := c.servers
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var bad error
	for n := 1; sc.Scan(); n++ {
		if bad != nil {
			return bad
		}
		var l ServerLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			// Only the last line may be cut short (a run killed
			// mid-write); one that is not last is an error.
			bad = fmt.Errorf("read server samples %s line %d: %w", path, n, err)
			continue
		}
		src := sd.source(l.Source)
		switch l.Type {
		case LineSource:
			src.note = l.Note
			if l.UserCounts != "" {
				sd.userCounts = l.UserCounts
			}
			if l.Interval > 0 {
				sd.interval = l.Interval
			}
		case LineError:
			src.errors++
			if src.firstErr == "" {
				src.firstErr = l.Err
			}
		case LineSample:
			// Coverage counts the ticks served; a file from before
			// readings carried their tick has only their times.
			served := l.Due
			if served.IsZero() {
				served = l.T
			}
			src.times = append(src.times, served)
			for m, v := range l.Counters {
				sd.add(m, l.Tags, true, l.T, v)
			}
			for m, v := range l.Gauges {
				sd.add(m, l.Tags, false, l.T, v)
			}
		}
	}
	return sc.Err()
}

func (sd *serverData) source(name string) *sourceData {
	s := sd.sources[name]
	if s == nil {
		s = &sourceData{name: name}
		sd.sources[name] = s
		sd.order = append(sd.order, name)
	}
	return s
}

func (sd *serverData) add(metric string, tags map[string]string, counter bool, t time.Time, v float64) {
	key := metric + "{" + tagKey(tags) + "}"
	s := sd.series[key]
	if s == nil {
		s = &serverSeries{metric: metric, tags: tags, counter: counter}
		sd.series[key] = s
	}
	s.raw = append(s.raw, rawReading{t, v})
}

// finish turns readings into increments and values from time zero.
func (sd *serverData) finish(origin time.Time) {
	rel := func(t time.Time) float64 { return t.Sub(origin).Seconds() }
	for _, src := range sd.sources {
		src.rel = src.rel[:0]
		for _, t := range src.times {
			src.rel = append(src.rel, rel(t))
		}
		sort.Float64s(src.rel)
	}
	for _, s := range sd.series {
		sort.SliceStable(s.raw, func(i, j int) bool { return s.raw[i].t.Before(s.raw[j].t) })
		s.pts = s.pts[:0]
		if !s.counter {
			for _, r := range s.raw {
				t := rel(r.t)
				s.pts = append(s.pts, serverPoint{t, t, r.v})
			}
			continue
		}
		for i := 1; i < len(s.raw); i++ {
			d := s.raw[i].v - s.raw[i-1].v
			if d < 0 {
				d = s.raw[i].v // reset: counted since the restart
			}
			s.pts = append(s.pts, serverPoint{rel(s.raw[i-1].t), rel(s.raw[i].t), d})
		}
	}
}

// share is the part of an increment over (from, to] that fell in w, and
// whether the interval touches w at all.
func (p serverPoint) share(w span) (float64, bool) {
	if p.to <= p.from { // two readings at one instant
		if p.to >= w.from && p.to < w.to {
			return p.v, true
		}
		return 0, false
	}
	o := min(p.to, w.to) - max(p.from, w.from)
	if o <= 0 {
		return 0, false
	}
	return p.v * o / (p.to - p.from), true
}

// matching lists the series of metric whose tags include sel, in a stable
// order.
func (sd *serverData) matching(metric string, sel map[string]string) []*serverSeries {
	var out []*serverSeries
	for _, key := range slices.Sorted(maps.Keys(sd.series)) {
		s := sd.series[key]
		if s.metric != metric {
			continue
		}
		ok := true
		for k, v := range sel {
			if s.tags[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// sum is what a counter counted in w over the matching series, and
// whether any reading interval touches w.
func (sd *serverData) sum(metric string, sel map[string]string, w span) (float64, bool) {
	var total float64
	seen := false
	for _, s := range sd.matching(metric, sel) {
		for _, p := range s.pts {
			if v, ok := p.share(w); ok {
				total += v
				seen = true
			}
		}
	}
	return total, seen
}

// seconds are the whole seconds whose midpoint lies in w, as perSecond
// takes them.
func seconds(w span) (first, last int) {
	return int(math.Ceil(w.from - 0.5)), int(math.Ceil(w.to-0.5)) - 1
}

// perSecond is a counter's count in each second of first..last over the
// matching series, NaN where no reading covers the second.
func (sd *serverData) perSecond(metric string, sel map[string]string, first, last int) []float64 {
	if last < first {
		return nil
	}
	out := make([]float64, last-first+1)
	seen := make([]bool, len(out))
	for _, s := range sd.matching(metric, sel) {
		for _, p := range s.pts {
			lo, hi := max(first, int(math.Floor(p.from))), min(last, int(math.Ceil(p.to)))
			for sec := lo; sec <= hi; sec++ {
				if v, ok := p.share(span{float64(sec), float64(sec + 1)}); ok {
					out[sec-first] += v
					seen[sec-first] = true
				}
			}
		}
	}
	for i := range out {
		if !seen[i] {
			out[i] = math.NaN()
		}
	}
	return out
}

// gaugeSeconds is a gauge's value in each second of first..last, summed
// over the matching series (memcached servers, containers): each series'
// last value read in the second, or in the second before when none was
// (a reading a little late), NaN where no series has one.
func (sd *serverData) gaugeSeconds(metric string, sel map[string]string, first, last int) []float64 {
	if last < first {
		return nil
	}
	out := make([]float64, last-first+1)
	seen := make([]bool, len(out))
	for _, s := range sd.matching(metric, sel) {
		for i := range out {
			sec := float64(first + i)
			v, ok := lastIn(s.pts, sec, sec+1)
			if !ok {
				v, ok = lastIn(s.pts, sec-1, sec)
			}
			if ok {
				out[i] += v
				seen[i] = true
			}
		}
	}
	for i := range out {
		if !seen[i] {
			out[i] = math.NaN()
		}
	}
	return out
}

// lastIn is the last gauge value read in [from, to) (pts in time order).
func lastIn(pts []serverPoint, from, to float64) (float64, bool) {
	i := sort.Search(len(pts), func(i int) bool { return pts[i].to >= to })
	if i > 0 && pts[i-1].to >= from {
		return pts[i-1].v, true
	}
	return 0, false
}

// Statistics a server metric takes in a check: a counter NAME (its count
// in the phase), NAME_rate (per second), NAME_rate_peak (the busiest
// second); a gauge NAME (its last value), NAME_peak and NAME_mean (over
// the phase's seconds).
const (
	statRate     = "_rate"
	statRatePeak = "_rate_peak"
	statPeak     = "_peak"
	statMean     = "_mean"
)

// mcHitRatio is memcached's own hit ratio: get_hits / cmd_get.
const mcHitRatio = "server_mc_hit_ratio"

// parseServerName splits a check's server metric into a sampled metric
// and a statistic ("" for the metric itself).
func parseServerName(name string) (metric string, stat string, ok bool) {
	return (*serverData)(nil).parseName(name)
}

// kind says whether metric is a counter, and whether it is known: one of
// serverMetrics, or a metric the service under test served (app_...),
// whose kind its readings carry.
func (sd *serverData) kind(metric string) (counter, known bool) {
	if m, ok := serverMetrics[metric]; ok {
		return m.counter, true
	}
	if sd == nil || !strings.HasPrefix(metric, appMetricPrefix) {
		return false, false
	}
	for _, s := range sd.series {
		if s.metric == metric {
			return s.counter, true
		}
	}
	return false, false
}

// parseName is parseServerName knowing the service's own metrics too.
func (sd *serverData) parseName(name string) (metric string, stat string, ok bool) {
	if _, known := sd.kind(name); known {
		return name, "", true
	}
	for _, suf := range []string{statRatePeak, statRate, statPeak, statMean} {
		base, cut := strings.CutSuffix(name, suf)
		counter, known := sd.kind(base)
		if !cut || !known {
			continue
		}
		if counter == (suf == statRate || suf == statRatePeak) {
			return base, suf, true
		}
	}
	return "", "", false
}

// serverMetric is a server metric's value over w, clipped to the run's
// traffic (the sampler also reads during set-up, which is never judged).
func (c *collector) serverMetric(name string, sel map[string]string, w span) (float64, bool) {
	if c.servers == nil {
		return 0, false
	}
	w = span{max(w.from, 0), min(w.to, c.end)}
	if w.length() <= 0 {
		return 0, false
	}
	sd := c.servers
	if name == mcHitRatio {
		hits, ok1 := sd.sum(mMCGetHits, sel, w)
		gets, ok2 := sd.sum(mMCCmdGet, sel, w)
		if !ok1 || !ok2 || gets == 0 {
			return 0, false
		}
		return hits / gets, true
	}
	metric, stat, ok := sd.parseName(name)
	if !ok {
		return 0, false
	}
	first, last := seconds(w)
	switch stat {
	case "":
		if counter, _ := sd.kind(metric); counter {
			return sd.sum(metric, sel, w)
		}
		return lastValue(sd.gaugeSeconds(metric, sel, first, last))
	case statRate:
		v, ok := sd.sum(metric, sel, w)
		return v / w.length(), ok
	case statRatePeak:
		return peak(sd.perSecond(metric, sel, first, last))
	case statPeak:
		return peak(sd.gaugeSeconds(metric, sel, first, last))
	case statMean:
		return mean(sd.gaugeSeconds(metric, sel, first, last))
	}
	return 0, false
}

func peak(vs []float64) (float64, bool) {
	m, ok := math.Inf(-1), false
	for _, v := range vs {
		if !math.IsNaN(v) {
			m, ok = max(m, v), true
		}
	}
	return m, ok
}

func mean(vs []float64) (float64, bool) {
	var s float64
	n := 0
	for _, v := range vs {
		if !math.IsNaN(v) {
			s += v
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return s / float64(n), true
}

func lastValue(vs []float64) (float64, bool) {
	for i := len(vs) - 1; i >= 0; i-- {
		if !math.IsNaN(vs[i]) {
			return vs[i], true
		}
	}
	return 0, false
}

// missingSeconds counts the seconds of the run [0, end] a source was not
// read in. A gap of g seconds between two readings, or between the start
// or end of the run and the reading nearest it, misses round(g) - 1
// readings: a reading a little late (1.4 s after the last) misses none, a
// stall of 3 s misses 2. rel is sorted.
func missingSeconds(rel []float64, end float64) int {
	n := int(math.Round(end))
	prev, seen, missing := 0.0, false, 0
	gap := func(g float64) {
		if k := int(math.Round(g)) - 1; k > 0 {
			missing += k
		}
	}
	for _, t := range rel {
		if t <= 0 || t >= end {
			continue
		}
		gap(t - prev)
		prev, seen = t, true
	}
	if !seen {
		return n
	}
	gap(end - prev)
	return min(missing, n)
}

// coverage is each source's readings and missing seconds over the run.
func (c *collector) coverage() *reports.Sampling {
	sd := c.servers
	if sd == nil {
		return nil
	}
	out := &reports.Sampling{Interval: sd.interval, DBUserCounts: sd.userCounts, RunS: int(math.Round(c.end))}
	if db := sd.sources[sourceDB]; db != nil {
		out.Note = db.note
	}
	for _, name := range sd.order {
		src := sd.sources[name]
		n := 0
		for _, t := range src.rel {
			if t > 0 && t < c.end {
				n++
			}
		}
		out.Sources = append(out.Sources, reports.SourceCoverage{
			Source: name, Readings: n, MissingS: missingSeconds(src.rel, c.end),
			Errors: src.errors, FirstError: src.firstErr,
		})
	}
	return out
}

// serverSeriesOut are the servers' 1 s series from time zero to the end
// of traffic: a counter as NAME_rate (its count in each second), a gauge
// as NAME, each per source; memcached's also summed over the servers
// (untagged), the fleet's view beside the client's.
func (c *collector) serverSeriesOut(n int) []reports.Series {
	sd := c.servers
	if sd == nil || n <= 0 {
		return nil
	}
	values := func(s *serverSeries, sel map[string]string) []reports.Float {
		var vs []float64
		if s.counter {
			vs = sd.perSecond(s.metric, sel, 0, n-1)
		} else {
			vs = sd.gaugeSeconds(s.metric, sel, 0, n-1)
		}
		out := make([]reports.Float, n)
		for i, v := range vs {
			out[i] = reports.Float(roundSig(v))
		}
		return out
	}
	name := func(s *serverSeries) string {
		if s.counter {
			return s.metric + statRate
		}
		return s.metric
	}
	var out []reports.Series
	fleet := map[string]bool{}
	for _, key := range slices.Sorted(maps.Keys(sd.series)) {
		s := sd.series[key]
		unit := serverMetrics[s.metric].unit
		if _, ok := s.tags["server"]; ok && !fleet[s.metric] {
			fleet[s.metric] = true
			out = append(out, reports.Series{Metric: name(s), Unit: unit, Step: 1, Values: values(s, nil)})
		}
		out = append(out, reports.Series{Metric: name(s), Unit: unit, Tags: s.tags, Step: 1, Values: values(s, s.tags)})
	}
	return out
}

// containers are the containers the sampler read, sorted.
func (sd *serverData) containers() []string {
	var out []string
	for _, name := range sd.order {
		if svc, ok := strings.CutPrefix(name, containerSource); ok {
			out = append(out, svc)
		}
	}
	sort.Strings(out)
	return out
}
