package nightly

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/harness"
	"github.com/firedrill-dev/firedrill/reports"
)

// fakeRun stands in for harness.Run: it writes a result whose p99 latency
// is latency(drill, profile, repeat) and whose verdict is pass(...).
func fakeRun(release string, latency func(string, int) float64, pass func(string, int) bool) RunFunc {
	n := map[string]int{}
	return func(ctx context.Context, o harness.RunOptions) (*reports.Result, string, error) {
		key := o.Drill.Name + "/" + o.Profile
		n[key]++
		dir := filepath.Join(o.OutDir, fmt.Sprintf("%s-%s-%d", o.Drill.Name, o.Profile, n[key]))
		os.MkdirAll(dir, 0o755)
		start := time.Date(2026, 1, 1, 0, 0, n[key], 0, time.UTC)
		p99 := latency(key, n[key])
		vs := make([]reports.Float, 10)
		for i := range vs {
			vs[i] = reports.Float(p99)
		}
		reached := o.Drill.Expect[o.Profile]
		if !pass(key, n[key]) {
			reached = map[string]string{reports.Held: reports.Broken, reports.Broken: reports.Held}[reached]
		}
		r := &reports.Result{
			SchemaVersion: reports.SchemaVersion, RunID: fmt.Sprintf("r%d", n[key]), Drill: o.Drill.Name, Profile: o.Profile,
			Release: release, Harness: "test", Complete: true, Start: start, End: start.Add(10 * time.Second),
			Environment: reports.Environment{Generators: max(1, o.Generators)}, Parameters: o.Params,
			Series:  []reports.Series{{Metric: reports.SeriesLatencyP99, Unit: "ms", Step: 1, Values: vs}},
			Verdict: reports.Verdict{Expected: o.Drill.Expect[o.Profile], Reached: reached, Pass: reached == o.Drill.Expect[o.Profile]},
		}
		if err := reports.WriteResult(filepath.Join(dir, "result.json"), r); err != nil {
			return nil, "", err
		}
		return r, dir, nil
	}
}

var drills = []harness.Drill{
	{Name: "alpha", Expect: map[string]string{"unprotected": "broken", "protected": "held"}, Profiles: []string{"unprotected", "protected"}},
	{Name: "beta", Expect: map[string]string{"default": "held"}, Profiles: []string{"default"}},
}

func TestNightlyWithoutBaselineReportsVerdicts(t *testing.T) {
	out := t.TempDir()
	var progress bytes.Buffer
	s, err := Run(context.Background(), Options{
		Drills: drills, Repeats: 2, OutDir: out, NoBaseline: "no baseline saved under baselines",
		Run:      fakeRun("v2", func(string, int) float64 { return 10 }, func(string, int) bool { return true }),
		Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Runs) != 6 {
		t.Errorf("runs %d, want 6 (3 drill/profiles x 2)", len(s.Runs))
	}
	for _, f := range []string{"report.html", "junit.xml", "summary.txt", "results/alpha-protected-2.json", "results/beta-default-1.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "compare.html")); err == nil {
		t.Error("compare.html written without a baseline")
	}
	if got := strings.Count(progress.String(), "\n"); got != 12 {
		t.Errorf("progress lines %d, want 12 (start and end of each run):\n%s", got, progress.String())
	}
	var buf bytes.Buffer
	WriteSummary(&buf, s)
	sum := buf.String()
	for _, want := range []string{"baseline: none (no baseline saved under baselines)", "alpha", "unprotected", "broken broken", "nightly: PASS"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	if n := strings.Count(sum, "\n"); n > 25 {
		t.Errorf("summary is %d lines, not one screen", n)
	}
}

// With the default repeats, a release slower in every run is a regression.
func TestNightlyFailsOnVerdictAndRegression(t *testing.T) {
	root := t.TempDir()
	// A baseline of v1: 3 repeats at 10 ms.
	base := filepath.Join(root, "n1")
	if _, err := Run(context.Background(), Options{Drills: drills, Repeats: DefaultRepeats, OutDir: base,
		Run: fakeRun("v1", func(_ string, i int) float64 { return 10 + float64(i)*0.01 }, func(string, int) bool { return true })}); err != nil {
		t.Fatal(err)
	}
	baselines := filepath.Join(root, "baselines")
	dir, n, err := SaveBaseline(baselines, "v1.0", base, false)
	if err != nil || n != 3*DefaultRepeats {
		t.Fatalf("save: %s %d %v", dir, n, err)
	}
	if _, _, err := SaveBaseline(baselines, "v1.0", base, false); err == nil {
		t.Error("saving over an existing baseline without force succeeded")
	}
	if _, _, err := SaveBaseline(baselines, "../x", base, false); err == nil {
		t.Error("a release with a slash was accepted")
	}
	got, why := ResolveBaseline(baselines, "latest")
	if got != dir {
		t.Fatalf("latest = %q (%s), want %s", got, why, dir)
	}
	// Head: beta 30% slower in every repeat, and alpha protected fails once.
	head := filepath.Join(root, "n2")
	s, err := Run(context.Background(), Options{Drills: drills, Repeats: DefaultRepeats, OutDir: head, Baseline: got,
		Run: fakeRun("v2", func(k string, i int) float64 {
			if strings.HasPrefix(k, "beta") {
				return 13 + float64(i)*0.01
			}
			return 10 + float64(i)*0.01
		}, func(k string, i int) bool { return !(k == "alpha/protected" && i == 3) }),
		// the nightly's own tolerances (p99 25%); Compare refuses a name
		// that is not a key metric's
		Compare: reports.CompareOptions{Tolerances: DefaultTolerances},
	})
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("err %v, want ErrFailed", err)
	}
	if len(s.Failed()) != 1 {
		t.Errorf("failed %d, want 1", len(s.Failed()))
	}
	if s.Regressions() < 2 { // alpha/protected verdict, beta p99
		t.Errorf("regressions %d, want at least 2", s.Regressions())
	}
	for _, f := range []string{"compare.html", "compare.txt", "junit.xml"} {
		if _, err := os.Stat(filepath.Join(head, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	var buf bytes.Buffer
	WriteSummary(&buf, s)
	for _, want := range []string{"REGRESSION beta default", "REGRESSION alpha protected", "FAILED alpha protected repeat 3", "nightly: FAIL"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, buf.String())
		}
	}
	j, _ := os.ReadFile(filepath.Join(head, "junit.xml"))
	if !strings.Contains(string(j), "<failure") {
		t.Error("junit has no failure")
	}
}

func TestBaselinesListAndResolve(t *testing.T) {
	root := t.TempDir()
	if d, why := ResolveBaseline(filepath.Join(root, "none"), "latest"); d != "" || !strings.Contains(why, "no baseline saved") {
		t.Errorf("empty: %q %q", d, why)
	}
	if d, why := ResolveBaseline(root, "v9"); d != "" || !strings.Contains(why, "not found") {
		t.Errorf("missing: %q %q", d, why)
	}
	src := filepath.Join(root, "n")
	Run(context.Background(), Options{Drills: drills[1:], Repeats: 1, OutDir: src,
		Run: fakeRun("x", func(string, int) float64 { return 1 }, func(string, int) bool { return true })})
	b := filepath.Join(root, "baselines")
	for _, r := range []string{"v1.9", "v1.10", "v1.2"} {
		if _, _, err := SaveBaseline(b, r, src, false); err != nil {
			t.Fatal(err)
		}
	}
	list, err := ListBaselines(b)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Release)
		if l.Results != 1 || len(l.Keys) != 1 || l.Keys[0] != "beta/default" {
			t.Errorf("%s: %+v", l.Release, l)
		}
	}
	if strings.Join(names, " ") != "v1.2 v1.9 v1.10" {
		t.Errorf("order %v", names)
	}
	if d, _ := ResolveBaseline(b, "latest"); filepath.Base(d) != "v1.10" {
		t.Errorf("latest %s", d)
	}
	if d, _ := ResolveBaseline(b, "v1.2"); filepath.Base(d) != "v1.2" {
		t.Errorf("by label %s", d)
	}
	if d, _ := ResolveBaseline(b, filepath.Join(b, "v1.9")); filepath.Base(d) != "v1.9" {
		t.Errorf("by folder %s", d)
	}
	if d, why := ResolveBaseline(b, "none"); d != "" || why == "" {
		t.Errorf("none: %q %q", d, why)
	}
}

func TestSummaryShape(t *testing.T) {
	root := t.TempDir()
	Run(context.Background(), Options{Drills: drills, Repeats: 4, OutDir: filepath.Join(root, "b"),
		Run: fakeRun("v1", func(_ string, i int) float64 { return 10 + float64(i)*0.01 }, func(string, int) bool { return true })})
	s, _ := Run(context.Background(), Options{Drills: drills, Repeats: 4, OutDir: filepath.Join(root, "h"), Baseline: filepath.Join(root, "b"),
		Run: fakeRun("v2", func(k string, i int) float64 {
			if strings.HasPrefix(k, "beta") {
				return 13 + float64(i)*0.01
			}
			return 10 + float64(i)*0.01
		}, func(k string, i int) bool { return !(k == "alpha/protected" && i == 3) })})
	var buf bytes.Buffer
	WriteSummary(&buf, s)
	t.Log("\n" + buf.String())
}

// Each drill runs in its @nightly short form under the user's --set, or at
// full length with Full; a --set reaches only the drills that declare it
// (gamma takes no "latency").
func TestNightlyRunsTheShortForm(t *testing.T) {
	short := []harness.Drill{{Name: "gamma", Expect: map[string]string{"default": "held"}, Profiles: []string{"default"},
		Nightly: map[string]string{"duration": "40", "fault_from": "10"},
		Params: []harness.Param{{Name: "duration", Type: "number", Default: "60"}, {Name: "fault_from", Type: "number", Default: "15"},
			{Name: "rate", Type: "number", Default: "200"}}}}
	for _, tc := range []struct {
		full bool
		want string
	}{{false, "duration=40 fault_from=5 rate=900"}, {true, "fault_from=5 rate=900"}} {
		var got []string
		run := fakeRun("v1", func(string, int) float64 { return 10 }, func(string, int) bool { return true })
		_, err := Run(context.Background(), Options{Drills: short, Repeats: 1, OutDir: t.TempDir(), Full: tc.full,
			Template: harness.RunOptions{Params: map[string]string{"fault_from": "5", "rate": "900", "latency": "50"}},
			Run: func(ctx context.Context, o harness.RunOptions) (*reports.Result, string, error) {
				for _, k := range slices.Sorted(maps.Keys(o.Params)) {
					got = append(got, k+"="+o.Params[k])
				}
				return run(ctx, o)
			}})
		if err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("full=%v: params %q, want %q", tc.full, g, tc.want)
		}
	}
}

// A nightly measured after `make bench` recorded its commit, "-dirty";
// saved as v1.0 it is v1.0 wherever it is compared.
func TestBaselineTakesTheReleaseItIsSavedAs(t *testing.T) {
	root := t.TempDir()
	n1 := filepath.Join(root, "n1")
	fast := func(_ string, i int) float64 { return 10 + float64(i)*0.01 }
	pass := func(string, int) bool { return true }
	if _, err := Run(context.Background(), Options{Drills: drills, Repeats: DefaultRepeats, OutDir: n1, Run: fakeRun("1a3f4ff-dirty", fast, pass)}); err != nil {
		t.Fatal(err)
	}
	baselines := filepath.Join(root, "baselines")
	dir, n, err := SaveBaseline(baselines, "v1.0", n1, false)
	if err != nil {
		t.Fatal(err)
	}
	// A baseline saved before this rule relabels itself in place.
	if _, m, err := SaveBaseline(baselines, "v1.0", dir, true); err != nil || m != n {
		t.Fatalf("re-saving v1.0 from itself: %d results, %v; want %d", m, err, n)
	}
	rs, err := ReadResults(dir)
	if err != nil || len(rs) != n {
		t.Fatalf("read back %d results, %v; want %d", len(rs), err, n)
	}
	for _, r := range rs {
		if r.Release != "v1.0" {
			t.Errorf("%s: release %q, want v1.0", r.RunID, r.Release)
		}
	}
	s, err := Run(context.Background(), Options{Drills: drills, Repeats: DefaultRepeats, OutDir: filepath.Join(root, "n2"), Baseline: dir,
		Run: fakeRun("2b4c5d6", fast, pass), Compare: reports.CompareOptions{Tolerances: DefaultTolerances}})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Comparison.BaseReleases; !slices.Equal(got, []string{"v1.0"}) {
		t.Errorf("base labelled %q, want v1.0", got)
	}
	var buf bytes.Buffer
	WriteSummary(&buf, s)
	if !strings.Contains(buf.String(), "baseline: v1.0 (") || strings.Contains(buf.String(), "dirty") {
		t.Errorf("summary does not name the baseline v1.0:\n%s", buf.String())
	}
}

// The service under test goes to the drills that drive one, and only
// there; one configuration runs a drill's profiles that must hold; a
// drill of one release runs against head when there are two.
func TestNightlyGivesTheServiceToItsDrills(t *testing.T) {
	app := harness.Drill{Name: "app-x", App: 1, Expect: map[string]string{"unprotected": "broken", "protected": "held"},
		Profiles: []string{"unprotected", "protected"}}
	svc := &harness.Service{Releases: []harness.Release{{Name: harness.ReleaseBase, Image: "api:1"}, {Name: harness.ReleaseHead, Image: "api:2"}}}
	got := map[string]*harness.Service{}
	base := fakeRun("v2", func(string, int) float64 { return 10 }, func(string, int) bool { return true })
	run := func(ctx context.Context, o harness.RunOptions) (*reports.Result, string, error) {
		got[o.Drill.Name+"/"+o.Profile] = o.Service
		return base(ctx, o)
	}
	if _, err := Run(context.Background(), Options{Drills: append([]harness.Drill{app}, drills...), Repeats: 1, OutDir: t.TempDir(),
		Run: run, Template: harness.RunOptions{Service: svc}}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Errorf("runs %v, want app-x protected only and alpha's and beta's profiles", got)
	}
	if _, ran := got["app-x/unprotected"]; ran {
		t.Error("one configuration ran the profile that must break")
	}
	s := got["app-x/protected"]
	if s == nil || len(s.Releases) != 1 || s.Releases[0].Image != "api:2" || s.Releases[0].Name != harness.ReleaseApp {
		t.Errorf("app-x got %+v, want head alone", s)
	}
	if got["alpha/protected"] != nil || got["beta/default"] != nil {
		t.Error("a drill of the traffic engine was given the service")
	}
}
