package harness

import (
	"math"

	"github.com/firedrill-dev/firedrill/reports"
)

// judgeRecovery applies the drill's recovery rule (RecoverySpec) to the
// ledger: windows of spec.Window seconds, stepping by the ledger's 100 ms,
// from spec.Settle seconds after the trigger's phase ends. A window is
// healthy when it offered operations, their mean fetch latency is at most
// LatencyFactor x the before phase's plus LatencySlack ms (an operation
// that never finished makes it infinite), and at most ErrorBudget of them
// were not served. The
// first healthy window is the recovery; after it the run is watched to its
// end in consecutive windows (the last one may be shorter, at least a third
// of a window), and one that is not healthy is a relapse: the run then
// counts as not recovered.
func (c *collector) judgeRecovery(spec *RecoverySpec, ps []phase) *reports.Recovery {
	if spec == nil {
		return nil
	}
	r := spec.withDefaults()
	out := &reports.Recovery{After: r.After, Reference: r.Reference, Window: r.Window, Settle: r.Settle, LatencyFactor: r.LatencyFactor, LatencySlackMs: r.LatencySlack, ErrorBudget: r.ErrorBudget}
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
	out.BeforeMeanMs = reports.Float(roundSig(ref))
	out.RemovedAt = round(trig.w.to)
	first := trig.w.to + r.Settle
	if c.end-first < r.Window {
		out.Note = "the run ended before a whole window after the settling time: watch longer"
		return out
	}
	healthy := func(w span) bool {
		offered := c.ledgerSum(w, "", "offered")
		if offered == 0 {
			return false
		}
		m, ok := c.meanFetch(w)
		if !ok || m > r.LatencyFactor*ref+r.LatencySlack {
			return false
		}
		served := c.ledgerSum(w, "", "served") + c.ledgerSum(w, "", "stale")
		return float64(offered-served) <= r.ErrorBudget*float64(offered)
	}
	at := math.NaN()
	for t := first; t+r.Window <= c.end+1e-9; t += tickSpan {
		if healthy(span{t, t + r.Window}) {
			at = t
			break
		}
	}
	if math.IsNaN(at) {
		out.Note = noHealthyWindow
		return out
	}
	out.Recovered = true
	rs := reports.Float(round(at - trig.w.to))
	out.RecoveryS = &rs
	for t := at + r.Window; c.end-t >= r.Window/3; t += r.Window {
		if !healthy(span{t, min(t+r.Window, c.end)}) {
			out.Recovered = false
			rl := reports.Float(round(t - trig.w.to))
			out.RelapseS = &rl
			out.Note = "recovered, then relapsed"
			break
		}
	}
	return out
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
