package harness

import (
	"math"

	"github.com/firedrill-dev/firedrill/reports"
)

// judgeRecovery applies the drill's recovery rule (RecoverySpec) to the
// ledger: windows of spec.Window seconds, stepping by the ledger's 100 ms,
// from spec.Settle seconds after the trigger's phase ends. A window is
// healthy when it offered operations, their mean fetch latency is at most
// LatencyFactor x the before phase's plus LatencySlack ms, plus
// NoiseSigmas standard errors of the two means (an operation that never
// finished makes it infinite), and at most ErrorBudget of them were not
// served. The
// first healthy window is the recovery; after it the run is watched to its
// end in consecutive windows (the last one may be shorter, at least a third
// of a window), and one that is not healthy is a relapse: the run then
// counts as not recovered.
func (c *collector) judgeRecovery(spec *RecoverySpec, ps []phase) *reports.Recovery {
	if spec == nil {
		return nil
	}
	r := spec.withDefaults()
	out := &reports.Recovery{After: r.After, Reference: r.Reference, Window: r.Window, Settle: r.Settle, LatencyFactor: r.LatencyFactor, LatencySlackMs: r.LatencySlack, NoiseSigmas: r.NoiseSigmas, ErrorBudget: r.ErrorBudget}
	trig, ok := findPhase(ps, r.After)
	if !ok {
		out.Note = "no phase " + r.After + ": the trigger never took place"
		return out
	}
	before, ok := findPhase(ps, r.Reference)
	if !ok {
		out.Note = "no " + r.Reference + " phase to compare with"
		return out
	}
	ref, ok := c.meanFetch(before.w)
	if !ok || math.IsInf(ref, 1) {
		out.Note = "the " + r.Reference + " phase has no finished fetch to compare with"
		return out
	}
	refVar := c.meanFetchVar(before.w)
	out.BeforeMeanMs = reports.Float(roundSig(ref))
	out.RemovedAt = round(trig.w.to)
	first := trig.w.to + r.Settle
	if c.end-first < r.Window {
		out.Note = "the run ended before a whole window after the settling time: watch longer"
		return out
	}
	// judge says whether w is healthy, and what it measured.
	judge := func(w span) (bool, *reports.RecoveryWindow) {
		jw := &reports.RecoveryWindow{FromS: reports.Float(round(w.from - trig.w.to)), ToS: reports.Float(round(w.to - trig.w.to))}
		offered := c.ledgerSum(w, "", "offered")
		if offered == 0 {
			return false, jw
		}
		served := c.ledgerSum(w, "", "served") + c.ledgerSum(w, "", "stale")
		unserved := float64(offered-served) / float64(offered)
		jw.Unserved = reports.Float(roundSig(unserved))
		m, ok := c.meanFetch(w)
		if !ok {
			return false, jw
		}
		band := r.LatencyFactor*ref + r.LatencySlack
		if r.NoiseSigmas > 0 && !math.IsInf(m, 1) {
			band += r.NoiseSigmas * math.Sqrt(c.meanFetchVar(w)+r.LatencyFactor*r.LatencyFactor*refVar)
		}
		jw.MeanMs = reports.Float(roundSig(m))
		jw.BandMs = reports.Float(roundSig(band))
		return m <= band && unserved <= r.ErrorBudget, jw
	}
	at := math.NaN()
	var last *reports.RecoveryWindow
	for t := first; t+r.Window <= c.end+1e-9; t += tickSpan {
		ok, jw := judge(span{t, t + r.Window})
		last = jw
		if ok {
			at = t
			break
		}
	}
	out.Judged = last
	if math.IsNaN(at) {
		out.Note = noHealthyWindow
		return out
	}
	out.Recovered = true
	rs := reports.Float(round(at - trig.w.to))
	out.RecoveryS = &rs
	for t := at + r.Window; c.end-t >= r.Window/3; t += r.Window {
		if ok, jw := judge(span{t, min(t+r.Window, c.end)}); !ok {
			out.Judged = jw
			out.Recovered = false
			rl := reports.Float(round(t - trig.w.to))
			out.RelapseS = &rl
			out.Note = "recovered, then relapsed"
			break
		}
	}
	return out
}

// meanFetchVar is the variance (ms^2) of meanFetch(w) as a count of noisy
// arrivals makes it, estimated from w's 1 s means (batch means): a fetch
// that misses costs tens of times a hit, and misses come in bursts (keys
// refilled together expire together), so the fetches of one second are
// not independent draws and their own variance over their count would
// understate the noise. 0 with fewer than two seconds of finished fetches.
func (c *collector) meanFetchVar(w span) float64 {
	var means []float64
	for t := w.from; t < w.to-1e-9; t++ {
		m, ok := c.meanFetch(span{t, min(t+1, w.to)})
		if ok && !math.IsInf(m, 1) {
			means = append(means, m)
		}
	}
	k := float64(len(means))
	if k < 2 {
		return 0
	}
	var sum, sq float64
	for _, m := range means {
		sum += m
	}
	mu := sum / k
	for _, m := range means {
		sq += (m - mu) * (m - mu)
	}
	return sq / (k - 1) / k
}

const noHealthyWindow = "no healthy window before the end of the run"

// meanFetch is the mean latency in ms of the fetches that arrived in w,
// +Inf when one never finished.
func (c *collector) meanFetch(w span) (float64, bool) {
	n := c.ledgerSum(w, "fetch", "count")
	if c.ledgerSum(w, "fetch", "unsent")+c.ledgerSum(w, "fetch", "unfinished") > 0 {
		return math.Inf(1), true
	}
	if n == 0 {
		return 0, false
	}
	return float64(c.ledgerSum(w, "fetch", "sum_us")) / float64(n) / 1000, true
}
