package reports

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Direction says which way a metric gets worse.
type Direction int

// Directions of a key metric.
const (
	LowerIsBetter Direction = iota
	HigherIsBetter
)

// KeyMetric is one number per run that comparison tracks across releases.
type KeyMetric struct {
	Name   string
	Unit   string
	Better Direction
	// Value extracts the metric from a run; ok is false when the run does
	// not carry it (such runs are left out of the samples).
	Value func(r *Result) (v float64, ok bool)
}

// KeyMetrics are the metrics Compare tracks for each drill and profile, in
// report order.
var KeyMetrics = []KeyMetric{
	{Name: "p99 latency", Unit: "ms", Better: LowerIsBetter, Value: p99Latency},
	{Name: "error rate", Unit: "/s", Better: LowerIsBetter, Value: errorRate},
	{Name: "peak DB query rate", Unit: "/s", Better: LowerIsBetter, Value: peakDBQueryRate},
	{Name: "recovery time", Unit: "s", Better: LowerIsBetter, Value: recoveryTime},
	{Name: "hit ratio", Unit: "", Better: HigherIsBetter, Value: hitRatio},
}

// p99Latency is the whole-run p99 from the latency histogram, which is
// exact; runs without one fall back to the mean of the 1 s p99 series.
func p99Latency(r *Result) (float64, bool) {
	for _, name := range []string{HistLatency, HistHTTP} {
		if h, ok := r.Histograms[name]; ok {
			if v, err := h.Percentile(99); err == nil {
				return toMillis(v, h.Unit), true
			}
		}
	}
	return seriesMean(r.Find(SeriesLatencyP99))
}

func toMillis(v float64, unit string) float64 {
	switch unit {
	case "ns":
		return v / 1e6
	case "us", "µs":
		return v / 1e3
	case "s":
		return v * 1e3
	}
	return v
}

// errorRate is errors per second over the whole run, all classes together.
// The harness writes an error series only for a class that occurred, so a
// run without a single error has none: a counted zero, not missing data.
func errorRate(r *Result) (float64, bool) {
	var total float64
	var any bool
	for _, s := range r.Find(SeriesErrorRate) {
		if m, ok := seriesMean([]*Series{s}); ok {
			total += m
			any = true
		}
	}
	if !any {
		return 0, measuredTraffic(r)
	}
	return total, true
}

// peakDBQueryRate is the highest 1 s database query rate. Queries are
// counted by the traffic itself, and a second without one has no value: a
// run whose every fetch hit the cache peaked at zero.
func peakDBQueryRate(r *Result) (float64, bool) {
	peak, ok := math.Inf(-1), false
	for _, s := range r.Find(SeriesDBQueryRate) {
		for _, v := range s.Values {
			if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) && f > peak {
				peak, ok = f, true
			}
		}
	}
	if !ok {
		return 0, measuredTraffic(r)
	}
	return peak, true
}

// measuredTraffic says whether the run counted its operations. Only then is
// a counter with no samples (errors, database queries) a zero: without
// traffic figures the run may simply not have recorded it.
func measuredTraffic(r *Result) bool {
	_, ok := seriesMean(r.Find(SeriesOpRate))
	return ok
}

// recoveryTime is the longest recovery of any phase. A run that never
// recovered counts as recovering at the end of the run: worse than any run
// that did, without an infinity that would break the statistics.
func recoveryTime(r *Result) (float64, bool) {
	v, ok := 0.0, false
	for _, p := range r.Phases {
		if s, has := p.Summary[SummaryRecovery]; has && !math.IsNaN(float64(s)) {
			v, ok = math.Max(v, float64(s)), true
		}
		if rec, has := p.Summary[SummaryRecovered]; has && rec == 0 {
			v, ok = math.Max(v, r.Duration()-p.From), true
		}
	}
	return v, ok
}

func hitRatio(r *Result) (float64, bool) { return seriesMean(r.Find(SeriesHitRatio)) }

func seriesMean(ss []*Series) (float64, bool) {
	var sum float64
	var n int
	for _, s := range ss {
		for _, v := range s.Values {
			if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
				sum += f
				n++
			}
		}
		if n > 0 { // the first series with data: the whole-fleet one comes first
			break
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// CompareOptions tune what counts as a regression.
type CompareOptions struct {
	// Alpha is the significance level of the one-sided Mann-Whitney U test
	// (significant when p <= Alpha); 0.05 when zero.
	Alpha float64
	// Tolerance is the relative change (0.05 = 5%) a significant change
	// must exceed, either way, to be a finding: a regression when worse,
	// an improvement when better. Within it a change is run-to-run noise.
	Tolerance float64
	// Tolerances overrides Tolerance per key metric name.
	Tolerances map[string]float64
}

func (o CompareOptions) tolerance(metric string) float64 {
	if t, ok := o.Tolerances[metric]; ok {
		return t
	}
	return o.Tolerance
}

// Significance of one metric's change.
const (
	Significant    = "significant"
	NotSignificant = "not significant"
	CannotTell     = "cannot tell"
)

// Outcomes of one metric's change, what reports call it. Only a regression
// or an improvement is a finding: a significant change within the
// tolerance is the noise the tolerance was set above.
const (
	OutcomeRegression      = "regression"       // significant, worse, past the tolerance
	OutcomeImprovement     = "improvement"      // significant, better, past the tolerance
	OutcomeWithinTolerance = "within tolerance" // significant, but not past the tolerance
	OutcomeNotJudged       = "not judged"       // significant past the tolerance in a profile expected to break
	OutcomeNotSignificant  = "not significant"
	OutcomeSame            = "same" // every run of both sides measured the same value
	OutcomeCannotTell      = "cannot tell"
)

// MetricChange is one key metric of one drill and profile, base vs head.
type MetricChange struct {
	Drill, Profile string
	Metric, Unit   string
	Better         Direction
	Base, Head     []float64 // one value per complete run that carries it
	BaseMedian     float64
	HeadMedian     float64
	// Change is (head-base)/base; +Inf when base is 0 and head is not.
	Change float64
	// P is the one-sided Mann-Whitney p-value in the direction the median
	// moved; NaN when no test could be made.
	P float64
	// Significance is Significant, NotSignificant or CannotTell, the
	// statistics alone; Outcome is what the change amounts to (one of the
	// Outcome constants). Note says why it cannot tell, or qualifies the
	// outcome.
	Significance string
	Outcome      string
	Note         string
	Worse        bool // head is worse than base
	// Regression: significant, worse, past the tolerance, in a profile
	// expected to hold (the metrics of a profile expected to break are
	// shown, not judged). Improvement is the same, for the better.
	Regression  bool
	Improvement bool
	// NotJudged: the profile is expected to break, so this metric is shown
	// but can never be a regression.
	NotJudged bool
	Tolerance float64
}

// VerdictChange is a drill and profile's verdicts in base and head.
type VerdictChange struct {
	Drill, Profile       string
	BasePassed, BaseRuns int
	HeadPassed, HeadRuns int
	// Regression is true when every base run passed and a head run failed.
	Regression bool
	Failures   []string // why head runs failed
}

// CheckChange is one check of a drill and profile: how many runs of each
// side it came out as required (passed, or observed).
type CheckChange struct {
	Drill, Profile    string
	Kind, Name, Phase string
	Expr, Incident    string
	BaseOK, BaseRuns  int
	HeadOK, HeadRuns  int
	// Required: the check decides the profile's verdict (see Check.Required).
	Required bool
	// Regression: a required check that came out as required in every base
	// run and not in some head run.
	Regression bool
	Failures   []string // the head runs' values where it did not
}

// Changed says whether the check came out differently in base and head.
func (c CheckChange) Changed() bool {
	return c.BaseRuns > 0 && float64(c.BaseOK)/float64(c.BaseRuns) != float64(c.HeadOK)/float64(max(c.HeadRuns, 1))
}

// Comparison is the outcome of comparing base results with head results.
type Comparison struct {
	BaseReleases, HeadReleases []string
	Alpha, Tolerance           float64
	Tolerances                 map[string]float64 // per key metric, over Tolerance
	Verdicts                   []VerdictChange
	// Checks are every check of every drill and profile, those whose
	// outcome changed first.
	Checks  []CheckChange
	Metrics []MetricChange
	Notes   []string // drills only on one side, skipped runs
}

// ToleranceText describes the tolerances in force: one figure, or each
// key metric's.
func (c *Comparison) ToleranceText() string {
	if len(c.Tolerances) == 0 {
		return fmt.Sprintf("tolerance %.1f%%", c.Tolerance*100)
	}
	o := CompareOptions{Tolerance: c.Tolerance, Tolerances: c.Tolerances}
	var parts []string
	for _, m := range KeyMetrics {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", m.Name, o.tolerance(m.Name)*100))
	}
	return "tolerance " + strings.Join(parts, ", ")
}

// Regressions counts metric, check and verdict regressions.
func (c *Comparison) Regressions() int {
	n := 0
	for _, v := range c.Verdicts {
		if v.Regression {
			n++
		}
	}
	for _, ch := range c.Checks {
		if ch.Regression {
			n++
		}
	}
	for _, m := range c.Metrics {
		if m.Regression {
			n++
		}
	}
	return n
}

// Compare compares each drill and profile's key metrics and verdicts between
// base and head, which may each hold several runs of the same drill and
// profile (repeats). Significance is a one-sided Mann-Whitney U test over the
// repeats, in the direction the medians moved, at p <= Alpha; with too few
// repeats, or runs made with different parameters, it says it cannot tell
// rather than guess.
func Compare(base, head []*Result, opts CompareOptions) (*Comparison, error) {
	if len(base) == 0 || len(head) == 0 {
		return nil, errors.New("compare: need at least one base and one head result")
	}
	if opts.Alpha == 0 {
		opts.Alpha = 0.05
	}
	if opts.Alpha < 0 || opts.Alpha >= 1 || opts.Tolerance < 0 {
		return nil, fmt.Errorf("compare: alpha %v must be in (0, 1) and tolerance %v not negative", opts.Alpha, opts.Tolerance)
	}
	for name, t := range opts.Tolerances {
		// a misspelt name would silently fall back to Tolerance
		if !slices.ContainsFunc(KeyMetrics, func(m KeyMetric) bool { return m.Name == name }) || t < 0 {
			return nil, fmt.Errorf("compare: tolerance %q = %v: want a key metric's name and a fraction >= 0", name, t)
		}
	}
	c := &Comparison{Alpha: opts.Alpha, Tolerance: opts.Tolerance, Tolerances: opts.Tolerances, BaseReleases: releases(base), HeadReleases: releases(head)}
	bg, hg := group(base), group(head)
	var keys []string
	for k := range bg {
		keys = append(keys, k)
	}
	for k := range hg {
		if _, ok := bg[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		ra, rb := pick(bg, hg, a), pick(bg, hg, b)
		return cmp.Or(cmp.Compare(ra.Drill, rb.Drill), cmp.Compare(rank(ra.Profile), rank(rb.Profile)), cmp.Compare(a, b))
	})
	for _, k := range keys {
		b, h := bg[k], hg[k]
		switch {
		case len(h) == 0:
			c.Notes = append(c.Notes, fmt.Sprintf("%s: only in base (%d runs), not run in head", k, len(b)))
			continue
		case len(b) == 0:
			c.Notes = append(c.Notes, fmt.Sprintf("%s: new in head (%d runs), nothing to compare with", k, len(h)))
		}
		c.Verdicts = append(c.Verdicts, verdictChange(b, h))
		c.Checks = append(c.Checks, checkChanges(b, h)...)
		if len(b) == 0 {
			continue
		}
		b, h = complete(c, "base", k, b), complete(c, "head", k, h)
		unlike := ""
		if diff := paramsDiffer(b, h); diff != "" {
			unlike = "base and head ran with different parameters (" + diff + "): compare runs of the same form"
		}
		for _, m := range KeyMetrics {
			c.Metrics = append(c.Metrics, compareMetric(m, pick(bg, hg, k), b, h, opts, unlike))
		}
	}
	// Checks whose outcome changed come first, regressions first of all.
	slices.SortStableFunc(c.Checks, func(a, b CheckChange) int {
		return cmp.Or(-cmp.Compare(btoi(a.Regression), btoi(b.Regression)), -cmp.Compare(btoi(a.Changed()), btoi(b.Changed())))
	})
	return c, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkChanges compares each check of one drill and profile, by kind and
// name, over the runs of each side. Runs without checks (schema 1) are left
// out.
func checkChanges(base, head []*Result) []CheckChange {
	var order []string
	byKey := map[string]*CheckChange{}
	tally := func(rs []*Result, isHead bool) {
		for _, r := range rs {
			for _, ch := range r.Checks {
				if ch.Automatic && ch.OK() {
					continue // shown only when one fails
				}
				k := ch.Key()
				cc := byKey[k]
				if cc == nil {
					cc = &CheckChange{Drill: r.Drill, Profile: r.Profile, Kind: ch.Kind, Name: ch.Name, Phase: ch.Phase,
						Expr: ch.Expr, Incident: ch.Incident, Required: ch.Required(r.Verdict.Expected)}
					byKey[k] = cc
					order = append(order, k)
				}
				if isHead {
					cc.HeadRuns++
					if ch.OK() {
						cc.HeadOK++
					} else {
						cc.Failures = append(cc.Failures, fmt.Sprintf("%s: %s, %s", cmp.Or(r.RunID, "run"), ch.Outcome, ch.Values()))
					}
				} else {
					cc.BaseRuns++
					if ch.OK() {
						cc.BaseOK++
					}
				}
			}
		}
	}
	tally(base, false)
	tally(head, true)
	out := make([]CheckChange, 0, len(order))
	for _, k := range order {
		cc := byKey[k]
		cc.Regression = cc.Required && cc.BaseRuns > 0 && cc.BaseOK == cc.BaseRuns && cc.HeadOK < cc.HeadRuns
		out = append(out, *cc)
	}
	return out
}

// paramsDiffer names the first drill parameter whose values differ between
// the base and head runs ("" when they agree): a drill's short form and its
// full length measure different things.
func paramsDiffer(base, head []*Result) string {
	values := func(rs []*Result, k string) string {
		seen := map[string]bool{}
		for _, r := range rs {
			seen[cmp.Or(r.Parameters[k], "default")] = true
		}
		return strings.Join(slices.Sorted(maps.Keys(seen)), "|")
	}
	keys := map[string]bool{}
	for _, r := range append(slices.Clone(base), head...) {
		for k := range r.Parameters {
			keys[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if b, h := values(base, k), values(head, k); b != h {
			return fmt.Sprintf("%s: %s vs %s", k, b, h)
		}
	}
	return ""
}

func pick(a, b map[string][]*Result, k string) *Result {
	if rs := a[k]; len(rs) > 0 {
		return rs[0]
	}
	return b[k][0]
}

func group(rs []*Result) map[string][]*Result {
	g := map[string][]*Result{}
	for _, r := range rs {
		g[r.Key()] = append(g[r.Key()], r)
	}
	return g
}

func releases(rs []*Result) []string {
	m := map[string]bool{}
	for _, r := range rs {
		m[cmp.Or(r.Release, "unversioned")] = true
	}
	return slices.Sorted(maps.Keys(m))
}

// complete drops incomplete runs from metric samples: a run cut short
// would look better or worse than it was. Their verdicts still count.
func complete(c *Comparison, side, key string, rs []*Result) []*Result {
	var out []*Result
	for _, r := range rs {
		if r.Complete {
			out = append(out, r)
		} else {
			c.Notes = append(c.Notes, fmt.Sprintf("%s: %s run %s is incomplete (%s); its metrics are left out", key, side, r.RunID, r.IncompleteReason))
		}
	}
	return out
}

func verdictChange(base, head []*Result) VerdictChange {
	v := VerdictChange{Drill: head[0].Drill, Profile: head[0].Profile, BaseRuns: len(base), HeadRuns: len(head)}
	for _, r := range base {
		if r.Verdict.Pass {
			v.BasePassed++
		}
	}
	for _, r := range head {
		if r.Verdict.Pass {
			v.HeadPassed++
			continue
		}
		why := fmt.Sprintf("%s: expected %s, reached %s", cmp.Or(r.RunID, "run"), r.Verdict.Expected, r.Verdict.Reached)
		if r.Verdict.Reason != "" {
			why += " (" + r.Verdict.Reason + ")"
		}
		if !r.Complete {
			why += " [incomplete: " + r.IncompleteReason + "]"
		}
		v.Failures = append(v.Failures, why)
	}
	// A new drill that fails has no base to regress from, but still fails
	// its own JUnit case.
	v.Regression = v.BaseRuns > 0 && v.BasePassed == v.BaseRuns && v.HeadPassed < v.HeadRuns
	return v
}

// compareMetric compares one key metric; like names the drill and profile,
// since either side may have no complete run left. unlike, when set, says
// why the two sides cannot be compared at all.
func compareMetric(m KeyMetric, like *Result, base, head []*Result, opts CompareOptions, unlike string) MetricChange {
	mc := MetricChange{
		Drill: like.Drill, Profile: like.Profile, Metric: m.Name, Unit: m.Unit, Better: m.Better,
		P: math.NaN(), Change: math.NaN(), Tolerance: opts.tolerance(m.Name),
		// A profile that must break reproduces an incident: how hard it
		// breaks varies run to run (a peak DB rate 25% apart between two
		// nightlies of the same code) and says nothing of the release. Its
		// verdict is compared; its metrics are shown, not judged.
		NotJudged: like.Verdict.Expected == Broken,
	}
	for _, r := range base {
		if v, ok := m.Value(r); ok {
			mc.Base = append(mc.Base, v)
		}
	}
	for _, r := range head {
		if v, ok := m.Value(r); ok {
			mc.Head = append(mc.Head, v)
		}
	}
	mc.BaseMedian, mc.HeadMedian = median(mc.Base), median(mc.Head)
	if len(mc.Base) == 0 || len(mc.Head) == 0 {
		mc.Significance, mc.Outcome, mc.Note = CannotTell, OutcomeCannotTell, noDataNote(len(mc.Base), len(mc.Head))
		return mc
	}
	switch d := mc.HeadMedian - mc.BaseMedian; {
	case d == 0:
		mc.Change = 0
	case mc.BaseMedian == 0:
		mc.Change = math.Copysign(math.Inf(1), d)
	default:
		mc.Change = d / math.Abs(mc.BaseMedian)
	}
	worseBy := mc.Change
	if m.Better == HigherIsBetter {
		worseBy = -worseBy
	}
	mc.Worse = worseBy > 0
	if unlike == "" && constant(mc.Base, mc.Head) {
		// Every run measured the same (no error in any): there is no noise
		// to tell a signal from, and no signal.
		mc.Significance, mc.Outcome = NotSignificant, OutcomeSame
		return mc
	}
	if len(mc.Base) < 2 || len(mc.Head) < 2 {
		mc.Significance, mc.Outcome = CannotTell, OutcomeCannotTell
		mc.Note = fmt.Sprintf("%d vs %d runs: repeat each side to tell signal from noise", len(mc.Base), len(mc.Head))
		return mc
	}
	if unlike != "" {
		mc.Significance, mc.Outcome, mc.Note = CannotTell, OutcomeCannotTell, unlike
		return mc
	}
	// Each question is one-sided: "did head get worse?" for a regression,
	// "did it get better?" for an improvement. The test is made in the
	// direction the medians moved.
	u := MannWhitneyU(mc.Base, mc.Head)
	headHigher := mc.HeadMedian >= mc.BaseMedian
	mc.P = u.PLess // base less than head: head higher
	if !headHigher {
		mc.P = u.PGreater
	}
	// p <= alpha, not <: with 3 runs a side the smallest one-sided p is
	// exactly 1/20, and complete separation of 3 vs 3 is the evidence a
	// nightly of 3 repeats can give.
	alpha := opts.Alpha * (1 + 1e-9) // 1/20 computed is not always <= 0.05
	switch {
	case u.MinPOneSided > alpha:
		mc.Significance = CannotTell
		mc.Note = fmt.Sprintf("%d vs %d runs can never reach p<=%.2g (smallest possible one-sided p=%.3f); use at least 3 runs a side", len(mc.Base), len(mc.Head), opts.Alpha, u.MinPOneSided)
	case mc.P <= alpha:
		mc.Significance = Significant
	default:
		mc.Significance = NotSignificant
	}
	switch {
	case mc.Significance == CannotTell:
		mc.Outcome = OutcomeCannotTell
	case mc.Significance == NotSignificant:
		mc.Outcome = OutcomeNotSignificant
	case math.Abs(mc.Change) <= mc.Tolerance:
		// A tolerance is set above the spread between repeats of one
		// release: a difference inside it, however consistent, is that
		// spread, in either direction.
		mc.Outcome = OutcomeWithinTolerance
		mc.Note = fmt.Sprintf("significant, but %s is within the %s tolerance", fmtPct(mc.Change), fmtTol(mc.Tolerance))
	case mc.NotJudged:
		mc.Outcome = OutcomeNotJudged
		mc.Note = "not judged: this profile is expected to break"
	case mc.Worse:
		mc.Outcome, mc.Regression = OutcomeRegression, true
	default:
		mc.Outcome, mc.Improvement = OutcomeImprovement, true
	}
	return mc
}

// constant says whether every value of a and b is one and the same.
func constant(a, b []float64) bool {
	if len(a) == 0 {
		return false
	}
	for _, v := range append(slices.Clone(a), b...) {
		if v != a[0] {
			return false
		}
	}
	return true
}

// fmtTol formats a tolerance as a percentage without needless decimals:
// 25%, 2.5%.
func fmtTol(t float64) string {
	return strconv.FormatFloat(math.Round(t*1000)/10, 'f', -1, 64) + "%"
}

// noDataNote says which side did not measure a metric.
func noDataNote(base, head int) string {
	switch {
	case base == 0 && head == 0:
		return "no data on either side"
	case base == 0:
		return "no data in base"
	}
	return "no data in head"
}

// WriteCompareText writes a terminal summary of c: regressions first, then
// every metric.
func WriteCompareText(w io.Writer, c *Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "base %s vs head %s (alpha %.2g, %s)\n\n",
		strings.Join(c.BaseReleases, ","), strings.Join(c.HeadReleases, ","), c.Alpha, c.ToleranceText())
	fmt.Fprintln(tw, "DRILL\tPROFILE\tVERDICTS BASE\tVERDICTS HEAD\t")
	for _, v := range c.Verdicts {
		mark := ""
		if v.Regression {
			mark = "REGRESSION"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d passed\t%d/%d passed\t%s\n", v.Drill, v.Profile, v.BasePassed, v.BaseRuns, v.HeadPassed, v.HeadRuns, mark)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "DRILL\tPROFILE\tCHECK\tBASE\tHEAD\t")
	for _, ch := range c.Checks {
		mark := ""
		switch {
		case ch.Regression:
			mark = "REGRESSION"
		case ch.Changed() && !ch.Required:
			mark = "changed (not required by this profile)"
		case ch.Changed():
			mark = "changed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %q\t%d/%d\t%d/%d\t%s\n", ch.Drill, ch.Profile, ch.Kind, ch.Name, ch.BaseOK, ch.BaseRuns, ch.HeadOK, ch.HeadRuns, mark)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "DRILL\tPROFILE\tMETRIC\tBASE\tHEAD\tCHANGE\tP\t")
	for _, m := range c.Metrics {
		mark := m.Outcome
		switch m.Outcome {
		case OutcomeRegression:
			mark = "REGRESSION"
		case OutcomeNotJudged:
			mark = "significant, " + direction(m) + " (" + m.Note + ")"
		}
		p := "–"
		if !math.IsNaN(m.P) {
			p = fmt.Sprintf("%.3f", m.P)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Drill, m.Profile, m.Metric,
			fmtVal(m.BaseMedian, m.Unit), fmtVal(m.HeadMedian, m.Unit), fmtPct(m.Change), p, mark)
	}
	for _, n := range c.Notes {
		fmt.Fprintf(tw, "note: %s\n", n)
	}
	fmt.Fprintf(tw, "\n%d regression(s)\n", c.Regressions())
	return tw.Flush()
}

// direction is "worse" or "better": which way a metric moved.
func direction(m MetricChange) string {
	if m.Worse {
		return "worse"
	}
	return "better"
}

func fmtVal(v float64, unit string) string {
	s := fmtNum(v)
	if unit != "" && !math.IsNaN(v) {
		s += " " + unit
	}
	return s
}
