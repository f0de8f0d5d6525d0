// Package nightly runs every drill in every profile it declares, several
// times, and turns the results into what a nightly CI job needs: one HTML
// report, one comparison against a baseline release, JUnit XML and a
// one-screen text summary. It also keeps baselines: the results of a
// release stored under a folder that a CI cache or artefact store keeps.
package nightly

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/firedrill-dev/firedrill/harness"
	"github.com/firedrill-dev/firedrill/reports"
)

// DefaultRepeats is the number of runs of each drill and profile. Three is
// the fewest with which the comparison's one-sided Mann-Whitney U test can
// call a regression at alpha 0.05 (3 vs 3: smallest p = 1/C(6,3) = 0.05,
// reached when every head run is worse than every base run).
const DefaultRepeats = 3

// DefaultTolerances are the nightly's regression thresholds per key metric:
// a significant change for the worse must exceed them. They are set above
// the run-to-run spread measured between repeats of the same release in
// the profiles that must hold (two nightlies on a 2-core machine, 2026-11-23):
// p99 latency up to 22%, error rate up to 82% (a few errors a second),
// peak DB query rate up to 31%, hit ratio up to 3%. Recovery time moves in
// whole seconds of a few. A tighter threshold turns noise into red
// nightlies; --tolerance sets one figure for every metric.
var DefaultTolerances = map[string]float64{
	"p99 latency":        0.25,
	"error rate":         1.00,
	"peak DB query rate": 0.40,
	"recovery time":      0.50,
	"hit ratio":          0.05,
}

// RunFunc runs one drill in one profile: harness.Run, or a stand-in in tests.
type RunFunc func(ctx context.Context, o harness.RunOptions) (*reports.Result, string, error)

// Options configure a nightly.
type Options struct {
	Drills   []harness.Drill
	Repeats  int
	OutDir   string             // everything goes here
	Template harness.RunOptions // K6, Memcached, Params, Timeout, Generators, Release, Seed, ...
	// Full runs the drills at their default lengths. Otherwise each drill
	// runs in its short form, its @nightly parameters under Template.Params
	// (which win). Each drill gets only the Template.Params it declares.
	Full       bool
	Baseline   string // folder of baseline results; "" for none
	NoBaseline string // why there is no baseline, when Baseline is ""
	Compare    reports.CompareOptions
	Run        RunFunc   // default harness.Run
	Progress   io.Writer // one line per run
}

// Summary is what a nightly did.
type Summary struct {
	Runs        []RunOutcome
	Results     []*reports.Result
	Comparison  *reports.Comparison // nil without a baseline
	Baseline    string
	NoBaseline  string
	Report      string // report.html
	CompareHTML string // compare.html, "" without a baseline
	JUnit       string
	ResultsDir  string // flat copies of every result.json: OUT/results/
	Elapsed     time.Duration
	Generators  int
}

// RunOutcome is one run of one drill in one profile.
type RunOutcome struct {
	Drill, Profile string
	Repeat         int
	Dir            string
	Result         *reports.Result
	Err            error
}

// Failed lists the runs that did not reach their declared verdict.
func (s *Summary) Failed() []RunOutcome {
	var out []RunOutcome
	for _, r := range s.Runs {
		if r.Err != nil || r.Result == nil || !r.Result.Verdict.Pass {
			out = append(out, r)
		}
	}
	return out
}

// Regressions counts regressions against the baseline (0 without one).
func (s *Summary) Regressions() int {
	if s.Comparison == nil {
		return 0
	}
	return s.Comparison.Regressions()
}

// ErrFailed is returned when a verdict failed or a metric regressed; the
// reports were still written.
var ErrFailed = errors.New("nightly failed")

// Run runs the nightly and writes its reports. Its error wraps ErrFailed
// when a verdict failed or a metric regressed; other errors mean the
// nightly itself could not finish.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.Repeats < 1 {
		return nil, fmt.Errorf("nightly: repeats must be at least 1, got %d", o.Repeats)
	}
	if len(o.Drills) == 0 {
		return nil, errors.New("nightly: no drills to run")
	}
	if o.Run == nil {
		o.Run = harness.Run
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	start := time.Now()
	s := &Summary{Baseline: o.Baseline, NoBaseline: o.NoBaseline, ResultsDir: filepath.Join(o.OutDir, "results"),
		Generators: max(1, o.Template.Generators)}
	if err := os.MkdirAll(s.ResultsDir, 0o755); err != nil {
		return nil, fmt.Errorf("nightly: %w", err)
	}
	total := 0
	for _, d := range o.Drills {
		total += len(o.Template.Service.ProfilesFor(d)) * o.Repeats
	}
	n := 0
	// Repeats outermost: a nightly cut short still has every drill once.
	for rep := 1; rep <= o.Repeats; rep++ {
		for _, d := range o.Drills {
			// The service under test goes to the drills that drive one.
			svc, err := o.Template.Service.ForDrill(d)
			if err != nil {
				return nil, fmt.Errorf("nightly: %w", err)
			}
			for _, p := range o.Template.Service.ProfilesFor(d) {
				if ctx.Err() != nil {
					break
				}
				n++
				ro := o.Template
				ro.Drill, ro.Profile, ro.Service = d, p, svc
				ro.Params = d.Overrides(d.Declared(o.Template.Params), !o.Full)
				ro.OutDir = filepath.Join(o.OutDir, "runs")
				t0 := time.Now()
				fmt.Fprintf(o.Progress, "nightly: [%d/%d] %s %s repeat %d/%d\n", n, total, d.Name, p, rep, o.Repeats)
				res, dir, err := o.Run(ctx, ro)
				out := RunOutcome{Drill: d.Name, Profile: p, Repeat: rep, Dir: dir, Result: res, Err: err}
				s.Runs = append(s.Runs, out)
				status := "PASS"
				switch {
				case res == nil:
					status = "ERROR: " + errString(err)
				case !res.Verdict.Pass:
					status = fmt.Sprintf("FAIL: expected %s, reached %s", res.Verdict.Expected, res.Verdict.Reached)
					if res.Verdict.Reason != "" {
						status += " (" + res.Verdict.Reason + ")"
					}
				}
				eta := ""
				if left := total - n; left > 0 {
					eta = fmt.Sprintf(" (about %s left)", (time.Since(start) / time.Duration(n) * time.Duration(left)).Round(time.Minute))
				}
				fmt.Fprintf(o.Progress, "nightly: [%d/%d] %s %s repeat %d: %s in %s%s\n", n, total, d.Name, p, rep, status, time.Since(t0).Round(time.Second), eta)
				if res != nil {
					s.Results = append(s.Results, res)
					b, _ := os.ReadFile(filepath.Join(dir, "result.json"))
					if len(b) > 0 {
						name := fmt.Sprintf("%s-%s-%d.json", d.Name, p, rep)
						if err := reports.WriteFileAtomic(filepath.Join(s.ResultsDir, name), b); err != nil {
							return s, fmt.Errorf("nightly: %w", err)
						}
					}
				}
			}
		}
	}
	if len(s.Results) == 0 {
		return s, errors.New("nightly: no run produced a result")
	}
	if err := writeReports(o, s); err != nil {
		return s, err
	}
	s.Elapsed = time.Since(start)
	var buf bytes.Buffer
	WriteSummary(&buf, s)
	_ = reports.WriteFileAtomic(filepath.Join(o.OutDir, "summary.txt"), buf.Bytes())
	if ctx.Err() != nil {
		return s, fmt.Errorf("nightly: interrupted after %d of %d runs: %w", len(s.Runs), total, context.Cause(ctx))
	}
	if f, r := len(s.Failed()), s.Regressions(); f > 0 || r > 0 {
		return s, fmt.Errorf("%w: %d run(s) missed their verdict, %d regression(s)", ErrFailed, f, r)
	}
	return s, nil
}

func errString(err error) string {
	if err == nil {
		return "no result"
	}
	return err.Error()
}

func writeReports(o Options, s *Summary) error {
	var buf bytes.Buffer
	if err := reports.RenderHTML(&buf, s.Results); err != nil {
		return fmt.Errorf("nightly: report: %w", err)
	}
	s.Report = filepath.Join(o.OutDir, "report.html")
	if err := reports.WriteFileAtomic(s.Report, buf.Bytes()); err != nil {
		return fmt.Errorf("nightly: %w", err)
	}
	if o.Baseline != "" {
		base, err := ReadResults(o.Baseline)
		if err != nil {
			return fmt.Errorf("nightly: baseline: %w", err)
		}
		c, err := reports.Compare(base, s.Results, o.Compare)
		if err != nil {
			return fmt.Errorf("nightly: %w", err)
		}
		s.Comparison = c
		buf.Reset()
		if err := reports.RenderCompareHTML(&buf, c); err != nil {
			return fmt.Errorf("nightly: compare: %w", err)
		}
		s.CompareHTML = filepath.Join(o.OutDir, "compare.html")
		if err := reports.WriteFileAtomic(s.CompareHTML, buf.Bytes()); err != nil {
			return fmt.Errorf("nightly: %w", err)
		}
		buf.Reset()
		if err := reports.WriteCompareText(&buf, c); err == nil {
			_ = reports.WriteFileAtomic(filepath.Join(o.OutDir, "compare.txt"), buf.Bytes())
		}
	}
	buf.Reset()
	if err := reports.WriteJUnit(&buf, s.Results, s.Comparison); err != nil {
		return fmt.Errorf("nightly: junit: %w", err)
	}
	s.JUnit = filepath.Join(o.OutDir, "junit.xml")
	return reports.WriteFileAtomic(s.JUnit, buf.Bytes())
}

// WriteSummary writes the one-screen text summary: a line per drill and
// profile with its verdict in each repeat, the baseline, regressions and
// where the reports are.
func WriteSummary(w io.Writer, s *Summary) {
	type row struct {
		drill, profile, expected string
		reached                  []string
		pass                     bool
	}
	var rows []*row
	idx := map[string]*row{}
	for _, r := range s.Runs {
		k := r.Drill + "/" + r.Profile
		rw := idx[k]
		if rw == nil {
			rw = &row{drill: r.Drill, profile: r.Profile, pass: true}
			idx[k] = rw
			rows = append(rows, rw)
		}
		reached := "error"
		if r.Result != nil {
			reached = r.Result.Verdict.Reached
			rw.expected = r.Result.Verdict.Expected
			if !r.Result.Verdict.Pass {
				rw.pass = false
			}
		} else {
			rw.pass = false
		}
		rw.reached = append(rw.reached, reached)
	}
	failed := len(s.Failed())
	fmt.Fprintf(w, "nightly: %d run(s) of %d drill/profile(s), %d generator(s) each, in %s\n\n",
		len(s.Runs), len(rows), s.Generators, s.Elapsed.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DRILL\tPROFILE\tEXPECTED\tREACHED (each repeat)\t")
	for _, r := range rows {
		mark := "PASS"
		if !r.pass {
			mark = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.drill, r.profile, cmp.Or(r.expected, "?"), strings.Join(r.reached, " "), mark)
	}
	tw.Flush()
	fmt.Fprintln(w)
	writeSignatures(w, s.Runs)
	if s.Comparison == nil {
		fmt.Fprintf(w, "baseline: none (%s): nothing compared, verdicts only\n", cmp.Or(s.NoBaseline, "no --baseline given"))
	} else {
		fmt.Fprintf(w, "baseline: %s (%s) vs %s: %d regression(s)\n", strings.Join(s.Comparison.BaseReleases, ","), s.Baseline,
			strings.Join(s.Comparison.HeadReleases, ","), s.Comparison.Regressions())
		for _, v := range s.Comparison.Verdicts {
			if v.Regression {
				fmt.Fprintf(w, "  REGRESSION %s %s: verdict passed %d/%d in base, %d/%d now\n", v.Drill, v.Profile, v.BasePassed, v.BaseRuns, v.HeadPassed, v.HeadRuns)
			}
		}
		for _, c := range s.Comparison.Checks {
			if c.Regression {
				fmt.Fprintf(w, "  REGRESSION %s %s: %s %q came out as required %d/%d in base, %d/%d now\n", c.Drill, c.Profile, c.Kind, c.Name, c.BaseOK, c.BaseRuns, c.HeadOK, c.HeadRuns)
			}
		}
		cannot := map[string]int{}
		var notes []string
		for _, m := range s.Comparison.Metrics {
			if m.Regression {
				fmt.Fprintf(w, "  REGRESSION %s %s %s: %.4g -> %.4g %s (%+.1f%%, p=%.3f)\n", m.Drill, m.Profile, m.Metric, m.BaseMedian, m.HeadMedian, m.Unit, m.Change*100, m.P)
			}
			if m.Significance == reports.CannotTell {
				if cannot[m.Note] == 0 {
					notes = append(notes, m.Note)
				}
				cannot[m.Note]++
			}
		}
		for _, n := range notes {
			fmt.Fprintf(w, "  %d metric(s) cannot tell: %s\n", cannot[n], n)
		}
	}
	for _, r := range s.Failed() {
		why := errString(r.Err)
		if r.Result != nil {
			why = fmt.Sprintf("expected %s, reached %s", r.Result.Verdict.Expected, r.Result.Verdict.Reached)
			if r.Result.Verdict.Reason != "" {
				why += ": " + r.Result.Verdict.Reason
			}
		}
		fmt.Fprintf(w, "  FAILED %s %s repeat %d: %s (%s)\n", r.Drill, r.Profile, r.Repeat, why, r.Dir)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "report:  %s\n", s.Report)
	if s.CompareHTML != "" {
		fmt.Fprintf(w, "compare: %s\n", s.CompareHTML)
	}
	fmt.Fprintf(w, "junit:   %s\nresults: %s\n", s.JUnit, s.ResultsDir)
	switch {
	case failed > 0 || s.Regressions() > 0:
		fmt.Fprintf(w, "nightly: FAIL (%d run(s) missed their verdict, %d regression(s))\n", failed, s.Regressions())
	default:
		fmt.Fprintln(w, "nightly: PASS")
	}
}

// writeSignatures says which incident lines each drill reproduced: every
// signature check of the profiles that must break, with the repeats that
// observed it.
func writeSignatures(w io.Writer, runs []RunOutcome) {
	type sig struct {
		drill, name, cite string
		observed, runs    int
	}
	var order []string
	sigs := map[string]*sig{}
	for _, r := range runs {
		if r.Result == nil || r.Result.Verdict.Expected != reports.Broken {
			continue
		}
		for _, c := range r.Result.Checks {
			if c.Kind != reports.Signature {
				continue
			}
			k := r.Drill + "\x00" + c.Name
			sg := sigs[k]
			if sg == nil {
				sg = &sig{drill: r.Drill, name: c.Name, cite: c.Incident}
				sigs[k] = sg
				order = append(order, k)
			}
			sg.runs++
			if c.OK() {
				sg.observed++
			}
		}
	}
	if len(order) == 0 {
		return
	}
	fmt.Fprintln(w, "incident lines reproduced (signatures of the profiles that must break):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, k := range order {
		sg := sigs[k]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d/%d repeats\n", sg.drill, sg.cite, sg.name, sg.observed, sg.runs)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// ReadResults reads the results of a nightly or baseline folder: its
// results/ subfolder when there is one, else the *.json files in it, else
// every result.json below it.
func ReadResults(dir string) ([]*reports.Result, error) {
	files, err := resultFiles(dir)
	if err != nil {
		return nil, err
	}
	var out []*reports.Result
	for _, f := range files {
		r, err := reports.ReadResult(f)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func resultFiles(dir string) ([]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	if !st.IsDir() {
		return []string{dir}, nil
	}
	if st, err := os.Stat(filepath.Join(dir, "results")); err == nil && st.IsDir() {
		dir = filepath.Join(dir, "results")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() == "result.json" {
				files = append(files, p)
			}
			return nil
		})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("read results in %s: no result files there", dir)
	}
	sort.Strings(files)
	return files, nil
}
