package harness

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/firedrill-dev/firedrill/reports"
	"github.com/firedrill-dev/firedrill/traffic"
)

// Phase names the harness gives; a fault's phase is named after its kind.
const (
	phaseWarmup = "warmup"
	phaseBefore = "before"
	phaseAfter  = "after"
	phaseRun    = "run"
)

// phase is a phase of the run and its window.
type phase struct {
	name, kind string
	targets    []string
	w          span
}

// faultWindow is one fault in place, on one or more targets.
type faultWindow struct {
	kind, name string
	targets    []string
	w          span
}

// faultWindows pairs the injections and removals of faults (markers are
// not faults); one fault put on several targets within a second is one
// window. A fault never removed lasts to the end.
func (c *collector) faultWindows() []faultWindow {
	var ws []faultWindow
	open := map[string]int{} // key -> index in ws
	for _, e := range c.events {
		if e.Marker {
			continue
		}
		key := e.Fault + "\x00" + e.Target + "\x00" + e.Name
		switch e.Action {
		case reports.Inject:
			if _, ok := open[key]; ok {
				continue // injected again while in place: one window
			}
			open[key] = len(ws)
			ws = append(ws, faultWindow{kind: e.Fault, name: e.Name, targets: []string{e.Target}, w: span{e.At, math.Inf(1)}})
		case reports.Remove:
			if i, ok := open[key]; ok {
				ws[i].w.to = e.At
				delete(open, key)
			}
		}
	}
	for i := range ws {
		if math.IsInf(ws[i].w.to, 1) {
			ws[i].w.to = max(c.end, ws[i].w.from)
		}
	}
	var out []faultWindow
	for _, w := range ws {
		merged := false
		for i := range out {
			o := &out[i]
			if o.kind == w.kind && o.name == w.name && math.Abs(o.w.from-w.w.from) < 1 && math.Abs(o.w.to-w.w.to) < 1 {
				o.targets = append(o.targets, w.targets...)
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, w)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].w.from < out[j].w.from })
	return out
}

// phases splits the run: warm-up, before the first fault, each fault's
// window (named after its kind; kind:name, or kind_2, when a kind comes
// back), after the last one, the drill's own windows, and the whole run.
func (c *collector) phases(spec *Spec) []phase {
	warm := 0.0
	if spec != nil {
		warm = min(spec.Warmup, c.end)
	}
	var out []phase
	if warm > 0 {
		out = append(out, phase{name: phaseWarmup, kind: reports.PhaseWarmup, w: span{0, warm}})
	}
	fws := c.faultWindows()
	byKind := map[string][]int{}
	for i, f := range fws {
		byKind[f.kind] = append(byKind[f.kind], i)
	}
	names := make([]string, len(fws))
	for kind, idx := range byKind {
		if len(idx) == 1 {
			names[idx[0]] = kind
			continue
		}
		// kind:name when the names tell the windows apart, else
		// kind:target, else kind_1, kind_2, ...
		label := func(f faultWindow) string { return f.name }
		if !distinct(idx, fws, label) {
			label = func(f faultWindow) string { return strings.Join(f.targets, ",") }
		}
		for n, i := range idx {
			if distinct(idx, fws, label) {
				names[i] = kind + ":" + label(fws[i])
			} else {
				names[i] = kind + "_" + strconv.Itoa(n+1)
			}
		}
	}
	if len(fws) > 0 {
		first, last := math.Inf(1), 0.0
		for _, f := range fws {
			first, last = min(first, f.w.from), max(last, f.w.to)
		}
		out = append(out, phase{name: phaseBefore, kind: reports.PhaseBefore, w: span{warm, max(warm, first)}})
		for i, f := range fws {
			out = append(out, phase{name: names[i], kind: reports.PhaseFault, targets: f.targets, w: f.w})
		}
		if last < c.end {
			out = append(out, phase{name: phaseAfter, kind: reports.PhaseAfter, w: span{last, c.end}})
		}
	}
	if spec != nil {
		for _, ws := range spec.Windows {
			base := 0.0
			if anchor := ws.After + ws.Of; anchor != "" {
				p, ok := findPhase(out, anchor)
				if !ok {
					continue // judged as a missing phase by the checks that use it
				}
				base = p.w.from
				if ws.After != "" {
					base = p.w.to
				}
			}
			w := span{base + ws.From, min(base+ws.To, c.end)}
			out = append(out, phase{name: ws.Name, kind: reports.PhaseWindow, w: w})
		}
	}
	out = append(out, phase{name: phaseRun, kind: reports.PhaseRun, w: span{warm, c.end}})
	return out
}

// distinct says whether label tells the windows idx apart (and none is
// empty).
func distinct(idx []int, fws []faultWindow, label func(faultWindow) string) bool {
	seen := map[string]bool{}
	for _, i := range idx {
		l := label(fws[i])
		if l == "" || seen[l] {
			return false
		}
		seen[l] = true
	}
	return true
}

func findPhase(ps []phase, name string) (phase, bool) {
	for _, p := range ps {
		if p.name == name {
			return p, p.w.to > p.w.from
		}
	}
	return phase{}, false
}

// Outcome and count names of the ledger a check can use, with {op=...}
// (and {class=...} for failed).
var ledgerNames = append([]string{"offered", "late"}, traffic.OutcomeNames[:]...)

// metric is the value of a metric over window w, and false when w holds
// no data for it. See the README's table of check metrics.
func (c *collector) metric(name string, sel map[string]string, w span) (float64, bool) {
	op := sel["op"]
	if strings.HasPrefix(name, "http_") && isHTTPMetric(name) {
		return c.httpMetric(name, sel, w)
	}
	if slices.Contains(integrityMetrics, name) {
		return c.integrityMetric(name, sel)
	}
	for _, n := range ledgerNames {
		if name == n {
			if !c.hasLedger() {
				return 0, false
			}
			if cl := sel["class"]; cl != "" && n == "failed" {
				return float64(c.ledgerSum(w, op, "failed."+cl)), true
			}
			return float64(c.ledgerSum(w, op, n)), true
		}
	}
	if base, ok := strings.CutSuffix(name, "_ratio"); ok && (base == "fresh" || slices.Contains(ledgerNames, base)) {
		offered := c.ledgerSum(w, op, "offered")
		if !c.hasLedger() || offered == 0 {
			return 0, false
		}
		var n int64
		switch base {
		case "served":
			n = c.ledgerSum(w, op, "served") + c.ledgerSum(w, op, "stale")
		case "fresh":
			n = c.ledgerSum(w, op, "served")
		default:
			v, ok := c.metric(base, sel, w)
			if !ok {
				return 0, false
			}
			n = int64(v)
		}
		return float64(n) / float64(offered), true
	}
	if strings.HasPrefix(name, "server_") || strings.HasPrefix(name, appMetricPrefix) {
		return c.serverMetric(name, sel, w)
	}
	switch name {
	case "duration_s":
		return w.length(), w.length() > 0
	case "offered_rate":
		if !c.hasLedger() || w.length() <= 0 {
			return 0, false
		}
		return float64(c.ledgerSum(w, op, "offered")) / w.length(), true
	case "hit_ratio":
		h, _ := c.sumOf(traffic.MetricHits, sel, w)
		m, _ := c.sumOf(traffic.MetricMisses, sel, w)
		if h+m == 0 {
			return 0, false
		}
		return h / (h + m), true
	case "db_rate":
		if w.length() <= 0 {
			return 0, false
		}
		q, _ := c.sumOf(traffic.MetricDBQueries, sel, w)
		return q / w.length(), true
	case "db_rate_peak":
		return c.busiestSecond(traffic.MetricDBQueries, sel, w)
	case "db_rate_burst":
		return c.burst(traffic.MetricDBQueries, sel, w)
	case "errors":
		v, _ := c.sumOf(traffic.MetricErrors, sel, w)
		return v, true
	case "error_rate":
		if w.length() <= 0 {
			return 0, false
		}
		v, _ := c.sumOf(traffic.MetricErrors, sel, w)
		return v / w.length(), true
	case "connections_peak":
		return c.peakGauge(traffic.MetricDBConns, sel, w)
	case reports.SummaryRecovered:
		if r := c.recovery; r != nil {
			if r.RecoveryS == nil && r.Note != "" && r.Note != noHealthyWindow {
				return 0, false // the rule could not be applied
			}
			return b2f(r.Recovered), true
		}
		return c.lastGauge("firedrill_recovered", sel, w)
	case reports.SummaryRecovery:
		if r := c.recovery; r != nil {
			if r.RecoveryS == nil {
				return 0, false
			}
			return float64(*r.RecoveryS), true
		}
		return c.lastGauge("firedrill_recovery_s", sel, w)
	case "relapse_s":
		if r := c.recovery; r != nil && r.RelapseS != nil {
			return float64(*r.RelapseS), true
		}
		return 0, false
	}
	if h, stat, ok := latencyName(name); ok {
		return c.latency(h, stat, op, w)
	}
	switch c.types[name] {
	case "counter":
		v, _ := c.sumOf(name, sel, w) // a counter with no sample counted 0
		return v, true
	case "gauge":
		// its value in effect at the phase's end: the last sample up to
		// then, so a gauge set in setup (a measured capacity) counts
		return c.lastGauge(name, sel, span{math.Inf(-1), w.to})
	}
	return 0, false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// latencyOps says which operations' unfinished count belongs to each
// latency histogram: an operation that never finished is slower than any
// bound. Database queries are parts of operations and have none.
var latencyOps = map[string]string{"fetch": traffic.OpFetch, "write": traffic.OpWrite, "lookup": traffic.OpLookup,
	"request": traffic.OpRequest, "db": ""}

// latencyName splits "fetch_p99" into histogram and statistic.
func latencyName(name string) (hist, stat string, ok bool) {
	h, stat, ok := strings.Cut(name, "_")
	if _, known := latencyOps[h]; !ok || !known {
		return "", "", false
	}
	switch {
	case stat == "max", stat == "mean", stat == "count":
		return h, stat, true
	case len(stat) > 1 && stat[0] == 'p':
		if _, err := percentile(stat); err == nil {
			return h, stat, true
		}
	}
	return "", "", false
}

// percentiles are the statistics "p50" ... "p9999" a latency metric takes.
var percentiles = map[string]float64{"p50": 50, "p75": 75, "p90": 90, "p95": 95, "p99": 99, "p999": 99.9, "p9999": 99.99}

func percentile(stat string) (float64, error) {
	if p, ok := percentiles[stat]; ok {
		return p, nil
	}
	return 0, fmt.Errorf("bad percentile %q: want one of p50, p75, p90, p95, p99, p999, p9999", stat)
}

// latency is a statistic of histogram h over w in milliseconds, counting
// its operations that never finished (unsent, unfinished) as slower than
// any value: a percentile that falls on them is +Inf.
func (c *collector) latency(h, stat, op string, w span) (float64, bool) {
	hist, inf, ok := c.latencySamples(h, op, w)
	if !ok {
		return 0, false
	}
	var n int64
	if hist != nil {
		n = hist.TotalCount()
	}
	if n+inf == 0 {
		return 0, false
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	switch stat {
	case "count":
		return float64(n), true
	case "max":
		if inf > 0 {
			return math.Inf(1), true
		}
		return ms(hist.Max()), true
	case "mean":
		if inf > 0 {
			return math.Inf(1), true
		}
		return hist.Mean() / 1000, true
	}
	p, _ := percentile(stat)
	return quantileWithInf(hist, n, inf, p), true
}

// latencySamples is engine latency h's histogram over w and the count of
// its operations that never finished (unsent, unfinished), which rank
// above every recorded one; ok is false when the check asks for another
// operation than h's.
func (c *collector) latencySamples(h, op string, w span) (hist *hdrhistogram.Histogram, inf int64, ok bool) {
	if o, found := latencyOps[h]; found && o != "" {
		if op != "" && op != o {
			return nil, 0, false
		}
		inf = c.ledgerSum(w, o, "unsent") + c.ledgerSum(w, o, "unfinished")
	}
	return c.histogram(h, w), inf, true
}

// quantileWithInf is the p-th percentile, in ms, of n recorded values and
// inf values above all of them.
func quantileWithInf(h *hdrhistogram.Histogram, n, inf int64, p float64) float64 {
	total := n + inf
	rank := int64(math.Ceil(p / 100 * float64(total)))
	rank = max(rank, 1)
	if rank > n {
		return math.Inf(1)
	}
	return float64(h.ValueAtQuantile(100*float64(rank)/float64(n))) / 1000
}

// summaryNames are the statistics every phase's summary carries (more are
// available to checks), the servers' own view beside the client's; each
// container's CPU is added as server_cpu_rate{container=NAME}.
var summaryNames = []string{
	"duration_s", "offered", "offered_rate", "served_ratio", "failed", "shed", "unsent", "unfinished", "late",
	"fetch_p50", "fetch_p99", "fetch_max", "db_p99", "write_p99", "lookup_p99", "request_p50", "request_p99",
	"hit_ratio", "db_rate", "db_rate_peak", "db_rate_burst", "error_rate", "connections_peak",
	reports.SummaryRecovered, reports.SummaryRecovery,
	mDBUserSelect + statRate, mDBUserSelect + statRatePeak, mDBUserUpdate + statRate, mDBQuestions + statRate,
	mDBUserBusy + statRate, mDBThreadsRunning + statPeak, mDBThreadsConnected + statPeak, mDBMaxConnErrors,
	mMCCmdGet + statRate, mcHitRatio, mMCCurrConnections + statPeak,
	"http_offered", "http_rate", "http_served_ratio", "http_shed_ratio", "http_timeout_ratio", "http_p50", "http_p99", "http_max",
}

// isHTTPMetric says whether name is one of the http_* metrics the
// collector computes from k6's requests (not a k6 metric such as
// http_reqs, which is a plain counter).
func isHTTPMetric(name string) bool {
	stat := strings.TrimPrefix(name, "http_")
	switch stat {
	case "offered", "rate", "served", "shed", "timeout", "failed", "error",
		"served_ratio", "shed_ratio", "timeout_ratio", "failed_ratio", "error_ratio", "max", "mean", "count":
		return true
	}
	_, err := percentile(stat)
	return err == nil
}

func (c *collector) summary(w span) map[string]reports.Float {
	out := map[string]reports.Float{}
	put := func(key, name string, sel map[string]string) {
		if v, ok := c.metric(name, sel, w); ok {
			out[key] = reports.Float(roundSig(v))
		}
	}
	for _, n := range summaryNames {
		put(n, n, nil)
	}
	if c.servers != nil {
		for _, ct := range c.servers.containers() {
			put(mCPU+statRate+"{container="+ct+"}", mCPU+statRate, map[string]string{"container": ct})
		}
	}
	return out
}

func roundSig(v float64) float64 {
	if math.IsInf(v, 0) || v == 0 {
		return v
	}
	return math.Round(v*1000) / 1000
}

func round(v float64) float64 { return math.Round(v*1000) / 1000 }

// judge evaluates the checks of profile on the phases, after the
// automatic preconditions.
func (c *collector) judge(spec *Spec, profile string, ps []phase) []reports.Check {
	var out []reports.Check
	if spec == nil {
		return nil
	}
	run, _ := findPhase(ps, phaseRun)
	if c.hasHTTP() || spec.HTTP {
		// A drill of a service under test: its requests are the traffic,
		// and an arrival-rate scenario that ran out of VUs sent fewer
		// than it offered, which would flatter every figure.
		n, _ := c.metric("http_offered", nil, run.w)
		out = append(out, auto("traffic ran", "http_offered > 0", phaseRun, n, n > 0,
			"no HTTP request was made: the traffic scenario never started"))
		dropped, _ := c.sumOf(k6DroppedIterations, nil, span{math.Inf(-1), math.Inf(1)})
		out = append(out, auto("every request was sent", "dropped_iterations == 0", phaseRun, dropped, dropped == 0,
			fmt.Sprintf("k6 dropped %.0f iterations for want of a free VU: preallocate more VUs (the rate x the slowest request's seconds)", dropped)))
	} else {
		offered, _ := c.metric("offered", nil, run.w)
		out = append(out, auto("traffic ran", "offered > 0", phaseRun, offered, offered > 0,
			"no operation was offered: the replay never started"))
	}
	out = append(out, auto("every fault was removed", "faults_open == 0", phaseRun, float64(len(c.open)), len(c.open) == 0,
		"still in place at the end: "+strings.Join(c.open, "; ")))
	if c.hasLedger() {
		var sum int64
		for _, n := range traffic.OutcomeNames {
			sum += c.ledgerSum(span{math.Inf(-1), math.Inf(1)}, "", n)
		}
		all := c.ledgerSum(span{math.Inf(-1), math.Inf(1)}, "", "offered")
		out = append(out, auto("every offered operation was accounted for", "offered - outcomes == 0", phaseRun,
			float64(all-sum), all == sum, fmt.Sprintf("%d offered, %d ended (served, stale, shed, failed, unsent or unfinished)", all, sum)))
	}
	if cov := c.coverage(); cov != nil && cov.RunS > 0 {
		out = append(out, samplingCheck(cov, readsContainers(spec.For(profile))))
	}
	missing := map[string]bool{}
	unread := false
	for _, cs := range spec.For(profile) {
		ch := reports.Check{Name: cs.Name, Kind: cs.Kind, Phase: cs.Phase, Expr: cs.Expr, Incident: cs.Incident, Figure: cs.Figure, Relative: cs.parsed.rel}
		if cs.parsed.relMetric != "" {
			ch.Relative = cs.parsed.relMetric + "@" + cs.parsed.rel
		}
		ok, note := c.evaluate(cs.parsed, cs.Kind, cs.Phase, ps, &ch)
		if cs.Kind == reports.Integrity {
			if ch.Observed == nil {
				unread = true
			}
			if n := c.integrityNote(); n != "" {
				note = n
			}
		}
		ch.Note = note
		if strings.HasPrefix(note, "no phase") {
			missing[strings.Fields(note)[2]] = true
		}
		ch.Outcome = outcome(cs.Kind, ok)
		out = append(out, ch)
	}
	if unread {
		// without the tables' totals the integrity check proves nothing
		// either way: the run is invalid, not broken
		out = append(out, auto("the tenant tables were read for the integrity check", "tables_read > 0", phaseRun, 0, false,
			c.integrityNote()))
	}
	for _, name := range slices.Sorted(maps.Keys(missing)) {
		out = append(out, auto("phase "+name+" took place", "duration_s > 0", name, 0, false,
			"no phase "+name+": the fault was never injected, or the window fell outside the run"))
	}
	return out
}

// readsContainers says whether a check reads the containers' own CPU or
// memory series.
func readsContainers(checks []CheckSpec) bool {
	for _, c := range checks {
		for _, m := range []string{c.parsed.metric, c.parsed.relMetric} {
			if strings.HasPrefix(m, mCPU) || strings.HasPrefix(m, mMem) {
				return true
			}
		}
	}
	return false
}

// samplingCheck is the precondition that every source of the servers'
// own counters was read every second of the run, but for at most one
// second in each hundred begun: a phase's server figures are only as good
// as the readings under them.
//
// The containers' CPU and memory count only when a check reads them: they
// come from the Docker daemon, which a busy 2-core host delays by seconds
// (3 of 72 s missed in a run whose checks read none of them), and a gap
// in a chart's series proves nothing either way about the verdict. Their
// gaps stay listed under the result's sampling.
func samplingCheck(cov *reports.Sampling, containers bool) reports.Check {
	// one second per hundred begun: a reading a second late, once, under
	// a database starved at its CPU quota, does not void a short run
	allowed := (cov.RunS + 99) / 100
	worst := 0
	var bad []string
	for _, s := range cov.Sources {
		if strings.HasPrefix(s.Source, containerSource) && !containers {
			continue
		}
		worst = max(worst, s.MissingS)
		if s.MissingS > allowed {
			d := fmt.Sprintf("%s missed %d of %d s", s.Source, s.MissingS, cov.RunS)
			if s.FirstError != "" {
				d += " (" + s.FirstError + ")"
			}
			bad = append(bad, d)
		}
	}
	ch := auto("every server was sampled every second", "missing_s <= ceil(run_s / 100)", phaseRun, float64(worst), len(bad) == 0,
		"the servers' own counters have gaps: "+strings.Join(bad, "; "))
	b := reports.Float(allowed)
	ch.Bound = &b
	return ch
}

func auto(name, exp, phase string, v float64, ok bool, failNote string) reports.Check {
	f := reports.Float(v)
	ch := reports.Check{Name: name, Kind: reports.Precondition, Phase: phase, Expr: exp, Observed: &f,
		Outcome: outcome(reports.Precondition, ok), Automatic: true}
	if !ok {
		ch.Note = failNote
	}
	return ch
}

func outcome(kind string, ok bool) string {
	switch {
	case kind == reports.Signature && ok:
		return reports.Observed
	case kind == reports.Signature:
		return reports.NotObserved
	case ok:
		return reports.Pass
	}
	return reports.Fail
}

// evaluate fills ch's observed, reference and bound values and says
// whether the expression held; note explains a check without data.
func (c *collector) evaluate(e expr, kind, phaseName string, ps []phase, ch *reports.Check) (bool, string) {
	p, ok := findPhase(ps, phaseName)
	if !ok {
		return false, "no phase " + phaseName + " in this run"
	}
	v, ok := c.metric(e.metric, e.sel, p.w)
	if !ok {
		return false, fmt.Sprintf("no data: %s had nothing to measure %s on", phaseName, e.metric)
	}
	fv := reports.Float(roundSig(v))
	ch.Observed = &fv
	bound := e.k
	if e.rel != "" {
		rp, ok := findPhase(ps, e.rel)
		if !ok {
			return false, "no phase " + e.rel + " in this run"
		}
		rm := cmp.Or(e.relMetric, e.metric)
		rv, ok := c.metric(rm, e.sel, rp.w)
		if !ok {
			return false, fmt.Sprintf("no data: %s had nothing to measure %s on", e.rel, rm)
		}
		fr := reports.Float(roundSig(rv))
		ch.Reference = &fr
		bound = e.k*rv + e.plus
	}
	fb := reports.Float(roundSig(bound))
	ch.Bound = &fb
	ok = e.holds(v, bound)
	if kind == reports.SteadyState && (e.op == "<=" || e.op == "<") {
		if over, n, q, counted := c.beyond(e.metric, e.sel, p.w, bound, e.op == "<"); counted {
			allowed := quantileAllowance(n, q)
			pname := e.metric[strings.LastIndex(e.metric, "_")+1:]
			switch {
			case !ok && float64(over) <= allowed:
				return true, fmt.Sprintf("%d of %d above the bound: within a %s's sampling noise (it allows %.1f: %g%% and %g sigma)",
					over, n, pname, allowed, 100-100*q, quantileSigmas)
			case !ok:
				return false, fmt.Sprintf("%d of %d above the bound; a %s allows %.1f (%g%% and %g sigma of sampling noise)",
					over, n, pname, allowed, 100-100*q, quantileSigmas)
			}
		}
	}
	return ok, ""
}

// quantileSigmas is how many standard deviations of sampling noise a
// steady state's percentile bound allows: `p99 <= B` fails only when the
// share of samples above B is past 1% by more than that. A window's p99
// over 400 requests is its 4th slowest, and this host's own wake-up
// stalls (8-30 ms round trips to a local memcached, no Docker, in bursts
// of a few seconds) put a handful of requests past any bound a few times
// an hour: that is the machine, not the system under test.
const quantileSigmas = 3.0

// quantileAllowance is how many of n samples may lie above a q-quantile's
// bound before the bound is broken beyond sampling noise: the binomial
// count's mean (1-q)n and quantileSigmas of its standard deviation.
func quantileAllowance(n int64, q float64) float64 {
	nf := float64(n)
	return (1-q)*nf + quantileSigmas*math.Sqrt(q*(1-q)*nf)
}

// beyond counts the samples of a percentile metric (an engine latency or
// http_pXX) over w that lie above bound ms (at or above when strict),
// operations that never finished counted above any bound; n is every
// sample and q the percentile as a fraction. counted is false for any
// other metric.
func (c *collector) beyond(name string, sel map[string]string, w span, bound float64, strict bool) (over, n int64, q float64, counted bool) {
	var hist *hdrhistogram.Histogram
	var inf int64
	if strings.HasPrefix(name, "http_") && isHTTPMetric(name) {
		p, err := percentile(strings.TrimPrefix(name, "http_"))
		if err != nil || !c.hasHTTP() {
			return 0, 0, 0, false
		}
		q = p / 100
		hist = c.httpHistogram(sel, w)
	} else {
		h, st, ok := latencyName(name)
		if !ok || st[0] != 'p' {
			return 0, 0, 0, false
		}
		p, _ := percentile(st)
		q = p / 100
		if hist, inf, ok = c.latencySamples(h, sel["op"], w); !ok {
			return 0, 0, 0, false
		}
	}
	over, n = inf, inf
	if hist != nil {
		limit := int64(math.Round(bound * 1000)) // µs
		for _, b := range hist.Distribution() {
			n += b.Count
			if b.To > limit || (strict && b.To == limit) {
				over += b.Count
			}
		}
	}
	return over, n, q, n > 0
}

// decide turns judged checks into the verdict a profile reached: invalid
// when a precondition failed; for a profile declared broken, broken when
// every signature was observed, partial when some were, held when none
// were; for a profile declared held, broken when a steady state failed,
// held otherwise.
func decide(expected string, checks []reports.Check) (reached, reason string, observed, notObserved []string) {
	var failedPre, failedSteady []string
	for _, c := range checks {
		switch c.Kind {
		case reports.Precondition:
			if !c.OK() {
				failedPre = append(failedPre, c.Name)
			}
		case reports.Signature:
			if c.OK() {
				observed = append(observed, c.Name)
			} else {
				notObserved = append(notObserved, c.Name)
			}
		case reports.SteadyState, reports.Integrity:
			if !c.OK() {
				failedSteady = append(failedSteady, c.Name)
			}
		}
	}
	if len(failedPre) > 0 {
		return reports.Invalid, "precondition failed: " + strings.Join(failedPre, "; "), observed, notObserved
	}
	if expected == reports.Broken {
		switch {
		case len(observed) == 0:
			return reports.Held, "no signature observed: " + strings.Join(notObserved, "; "), observed, notObserved
		case len(notObserved) > 0:
			return reports.Partial, fmt.Sprintf("%d of %d signatures observed; not observed: %s", len(observed),
				len(observed)+len(notObserved), strings.Join(notObserved, "; ")), observed, notObserved
		}
		return reports.Broken, "every signature observed: " + strings.Join(observed, "; "), observed, notObserved
	}
	if len(failedSteady) > 0 {
		return reports.Broken, "steady state failed: " + strings.Join(failedSteady, "; "), observed, notObserved
	}
	return reports.Held, "", observed, notObserved
}
