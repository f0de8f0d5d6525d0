package sweep

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/harness"
	"github.com/firedrill-dev/firedrill/reports"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func drill() harness.Drill {
	return harness.Drill{
		Name: "storm", Expect: map[string]string{"unprotected": reports.Broken, "protected": reports.Held},
		Profiles: []string{"unprotected", "protected"}, Nightly: map[string]string{"observe": "20"},
		Params: []harness.Param{
			{Name: "rate", Type: harness.ParamNumber, Default: "100"},
			{Name: "trigger", Type: harness.ParamNumber, Default: "10"},
			{Name: "observe", Type: harness.ParamNumber, Default: "40"},
		},
	}
}

// fakeRun stands in for harness.Run: the system stays down when rate x
// trigger >= 2000 unprotected, and recovers in trigger seconds otherwise.
type fakeRun struct {
	calls []harness.RunOptions
	fail  map[string]bool // "rate=..,trigger=.." whose runs end in an error
}

func (f *fakeRun) run(_ context.Context, o harness.RunOptions) (*reports.Result, string, error) {
	f.calls = append(f.calls, o)
	key := "rate=" + o.Params["rate"] + ",trigger=" + o.Params["trigger"]
	dir := filepath.Join(o.OutDir, strings.ReplaceAll(key, ",", "-")+"-"+o.Profile)
	if f.fail[key] {
		return nil, dir, errors.New("environment: the database never answered")
	}
	rate, _ := strconv.ParseFloat(o.Params["rate"], 64)
	trig, _ := strconv.ParseFloat(o.Params["trigger"], 64)
	down := o.Profile == "unprotected" && rate*trig >= 2000
	served := 1.0
	if down {
		served = 1000 / (rate * trig) // the larger the storm, the less it serves
	}
	rs := reports.Float(trig)
	rec := &reports.Recovery{Recovered: !down, Judged: &reports.RecoveryWindow{FromS: 10, ToS: 40, MeanMs: reports.Float(trig), BandMs: 3}}
	if !down {
		rec.RecoveryS = &rs
	}
	reached := reports.Held
	if down {
		reached = reports.Broken
	}
	want := o.Drill.Expect[o.Profile]
	return &reports.Result{
		Drill: o.Drill.Name, Profile: o.Profile, Recovery: rec,
		Environment: reports.Environment{DBCapacity: 50},
		Verdict:     reports.Verdict{Expected: want, Reached: reached, Pass: want == reached},
		Phases: []reports.Phase{
			{Name: "calm", Summary: map[string]reports.Float{"offered_rate": reports.Float(rate)}},
			{Name: "run", Summary: map[string]reports.Float{"db_rate_peak": reports.Float(rate * 2)}},
			{Name: "after", Summary: map[string]reports.Float{"served_ratio": reports.Float(served)}},
		},
	}, dir, nil
}

func options(t *testing.T, f *fakeRun) Options {
	return Options{
		Drill: drill(), Axes: []Axis{{"rate", []string{"100", "200", "400"}}, {"trigger", []string{"5", "10"}}},
		Profiles: []string{"unprotected"}, Short: true, OutDir: t.TempDir(), Run: f.run,
		Template: harness.RunOptions{K6: "k6", Timeout: time.Minute},
	}
}

func TestSweepRunsTheGridAndMapsIt(t *testing.T) {
	f := &fakeRun{}
	o := options(t, f)
	var progress bytes.Buffer
	o.Progress = &progress
	s, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 6 || len(s.Cells) != 6 || !s.Complete {
		t.Fatalf("%d runs, %d cells, complete %v: want 6, 6, true", len(f.calls), len(s.Cells), s.Complete)
	}
	// the first axis outermost; the short form under the axes' values
	if p := f.calls[1].Params; p["rate"] != "100" || p["trigger"] != "10" || p["observe"] != "20" {
		t.Errorf("second run's parameters %v", p)
	}
	if !strings.Contains(progress.String(), "sweep: [6/6] rate=400 trigger=10 unprotected repeat 1: stayed down") ||
		!strings.Contains(progress.String(), "left)") {
		t.Errorf("progress:\n%s", progress.String())
	}
	if c := s.Cells[5]; c.ServedAfter == nil || *c.ServedAfter != 0.25 {
		t.Errorf("served after the trigger in rate=400 trigger=10: %v, want 0.25 from its \"after\" phase", c.ServedAfter)
	}
	if c := s.Cells[5]; c.Judged == nil || c.Judged.MeanMs != 10 || c.Judged.BandMs != 3 {
		t.Errorf("judged window in rate=400 trigger=10: %+v, want the run's deciding window (mean 10 ms, band 3 ms)", c.Judged)
	}
	if s.Capacity != 50 || s.Cells[5].LoadShare == nil || *s.Cells[5].LoadShare != 8 {
		t.Errorf("capacity %v, load share of rate 400: %v; want 50 and 8", s.Capacity, s.Cells[5].LoadShare)
	}
	for _, name := range []string{JSONFile, TextFile, HTMLFile} {
		if _, err := os.Stat(filepath.Join(o.OutDir, name)); err != nil {
			t.Error(err)
		}
	}
	txt, _ := os.ReadFile(filepath.Join(o.OutDir, TextFile))
	golden(t, "sweep.txt.golden", txt)
	html, _ := os.ReadFile(filepath.Join(o.OutDir, HTMLFile))
	golden(t, "sweep.html.golden", html)
	if !bytes.Contains(html, []byte(`class="cell down" href="runs/rate=400-trigger=10-unprotected/report.html"`)) {
		t.Errorf("the map's cell does not link its run's report:\n%s", html)
	}
}

func TestSweepResumesWithoutRedoingFinishedCells(t *testing.T) {
	f := &fakeRun{fail: map[string]bool{"rate=200,trigger=5": true}}
	o := options(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	o.Run = func(c context.Context, ro harness.RunOptions) (*reports.Result, string, error) {
		n++
		if n == 4 {
			cancel() // Ctrl-C during the fourth run
		}
		return f.run(c, ro)
	}
	s, err := Run(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "run the same command again to resume") || s.Complete {
		t.Fatalf("interrupted: %v, complete %v", err, s.Complete)
	}
	// three cells done (the third with an error, no result), the fourth
	// interrupted: the resume runs the errored one and the three left
	f2 := &fakeRun{}
	o.Run = f2.run
	var progress bytes.Buffer
	o.Progress = &progress
	s, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(f2.calls) != 4 || !s.Complete || len(s.Cells) != 6 {
		t.Fatalf("resume ran %d cells (want 4: the errored one and the three left), complete %v, %d cells", len(f2.calls), s.Complete, len(s.Cells))
	}
	if f2.calls[0].Params["rate"] != "200" || f2.calls[0].Params["trigger"] != "5" {
		t.Errorf("resume ran %v first, want the errored cell", f2.calls[0].Params)
	}
	if !strings.Contains(progress.String(), "2 of 6 cells done, 4 to run") {
		t.Errorf("progress:\n%s", progress.String())
	}
	// a third run has nothing left to do
	f3 := &fakeRun{}
	o.Run = f3.run
	if _, err := Run(context.Background(), o); err != nil || len(f3.calls) != 0 {
		t.Errorf("a finished sweep ran %d cells again (%v)", len(f3.calls), err)
	}
	// another grid in the same folder is refused, not mixed in
	o.Axes[0].Values = []string{"100", "800"}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "another grid") {
		t.Errorf("another grid in the same folder: %v", err)
	}
}

func TestSweepChecksItsInputFirst(t *testing.T) {
	cases := []struct {
		mod  func(o *Options)
		want string
	}{
		{func(o *Options) { o.Axes = nil }, "no --vary"},
		{func(o *Options) { o.Axes = []Axis{{"nosuch", []string{"1"}}} }, `no parameter "nosuch"`},
		{func(o *Options) { o.Axes = []Axis{{"rate", []string{"fast"}}} }, "rate"},
		{func(o *Options) { o.Axes = append(o.Axes, Axis{"rate", []string{"1"}}) }, "given twice"},
		{func(o *Options) { o.Set = map[string]string{"rate": "5"} }, "both varied and --set"},
		{func(o *Options) { o.Profiles = []string{"gentle"} }, `no profile "gentle"`},
		{func(o *Options) { o.Repeats = -1 }, "--repeats"},
		{func(o *Options) { o.Drill.Nightly = nil }, "no @nightly short form"},
	}
	for _, tc := range cases {
		f := &fakeRun{}
		o := options(t, f)
		tc.mod(&o)
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error containing %q, got %v", tc.want, err)
		}
		if len(f.calls) > 0 {
			t.Errorf("%q: ran %d cells before refusing", tc.want, len(f.calls))
		}
	}
	for _, bad := range []string{"rate", "rate=", "=1,2", "rate=1,,2", "rate=1,1"} {
		if _, err := ParseVary(bad); err == nil {
			t.Errorf("ParseVary(%q) accepted", bad)
		}
	}
	if a, err := ParseVary(" rate = 1, 2 "); err != nil || a.Name != "rate" || len(a.Values) != 2 || a.Values[1] != "2" {
		t.Errorf("ParseVary: %+v, %v", a, err)
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./sweep -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the current output; inspect it and run go test ./sweep -run %s -update if the change is intended", path, t.Name())
	}
}

// A drill edited in the middle of a sweep stops it before the next cell,
// and a sweep folder is not resumed with another version of the drill:
// one map, one drill.
func TestSweepStopsWhenItsDrillChanges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "storm.js")
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, text string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(path, "// v1\n")
	write(filepath.Join(dir, "lib", "firedrill.js"), "// lib v1\n")
	f := &fakeRun{}
	o := options(t, f)
	o.Drill.Path = path
	o.Run = func(c context.Context, ro harness.RunOptions) (*reports.Result, string, error) {
		if len(f.calls) == 1 {
			write(filepath.Join(dir, "lib", "firedrill.js"), "// lib v2\n") // edited during the second cell
		}
		return f.run(c, ro)
	}
	s, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "changed since the sweep started") || s.Complete {
		t.Fatalf("an edit of the drill's lib mid-sweep: err %v, complete %v; want a stop that names the change", err, s != nil && s.Complete)
	}
	if len(f.calls) != 2 || doneCells(s) != 2 || s.DrillDigest == "" {
		t.Errorf("%d runs, %d cells done, digest %q: want the 2 cells before the edit kept and no third run", len(f.calls), doneCells(s), s.DrillDigest)
	}
	// resumed with the edited drill: refused, nothing run
	o.Run = f.run
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "another version of") {
		t.Errorf("resume with an edited drill: %v, want a refusal", err)
	}
	if len(f.calls) != 2 {
		t.Errorf("%d runs after a refused resume, want 2", len(f.calls))
	}
	// the drill restored: it resumes where it stopped
	write(filepath.Join(dir, "lib", "firedrill.js"), "// lib v1\n")
	s, err = Run(context.Background(), o)
	if err != nil || !s.Complete || len(f.calls) != 6 {
		t.Errorf("resume with the drill restored: %v, complete %v, %d runs; want the 4 cells left run", err, s.Complete, len(f.calls))
	}
}
