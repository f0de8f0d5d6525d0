//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firedrill-dev/firedrill/reports"
)

func summaryCount(t *testing.T, path, metric string) float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Metrics map[string]map[string]any `json:"metrics"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Metrics[metric]["count"].(float64)
	return c
}

// The shipped pipeline drill on two generators: each drives its segment's
// share (one replay at rate/2), the merged result sums them exactly, the
// fault is injected once, thresholds are judged on the merge.
func TestRunTwoGenerators(t *testing.T) {
	bin, k6 := buildCLI(t)
	out := t.TempDir()
	cmd := exec.Command(bin, "run", "pipeline", "--generators", "2", "--out", out, "--k6", k6,
		"--scenarios", "../../scenarios", "--set", "duration=10", "--set", "rate=600",
		"--memcached", "2", "--quiet", "--release", "test")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run --generators 2: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	r := readOnlyResult(t, out)
	if r.Environment.Generators != 2 {
		t.Errorf("generators %d", r.Environment.Generators)
	}
	if left := leftovers(t, r.RunID); left != "" {
		t.Errorf("left behind: %s", left)
	}
	dir := filepath.Dir(mustGlob(t, filepath.Join(out, "*", "result.json")))
	c0 := summaryCount(t, filepath.Join(dir, "k6-summary-0.json"), "cache_fetches")
	c1 := summaryCount(t, filepath.Join(dir, "k6-summary-1.json"), "cache_fetches")
	if c0 < 1000 || c1 < 1000 {
		t.Errorf("each generator should drive half the load: %v and %v fetches", c0, c1)
	}
	var merged float64
	for _, p := range r.Phases {
		if p.Name == "run" {
			merged = float64(p.Summary["offered"])
		}
	}
	if merged != c0+c1 {
		t.Errorf("merged run offered %v fetches, want %v + %v", merged, c0, c1)
	}
	var series float64
	for _, s := range r.Find(reports.SeriesOpRate) {
		for _, v := range s.Values {
			if v == v {
				series += float64(v)
			}
		}
	}
	if series != c0+c1 {
		t.Errorf("op_rate series (offered by due time) sums to %v, want %v", series, c0+c1)
	}
	injects := 0
	for _, e := range r.Events {
		if e.Action == reports.Inject && !e.Marker {
			injects++
		}
	}
	if injects != 2 { // one per memcached proxy, from one generator
		t.Errorf("%d injections, want 2: %+v", injects, r.Events)
	}
	if h, ok := r.Histograms[reports.HistLatency]; !ok {
		t.Error("no merged fetch histogram")
	} else if n, _ := h.Count(); float64(n) != c0+c1 {
		t.Errorf("the merged fetch histogram holds %d fetches, want %v", n, c0+c1)
	}
	if r.Verdict.Reached != reports.Held {
		t.Errorf("verdict %+v", r.Verdict)
	}
	// The servers are sampled once for the run, whatever its generators,
	// and their counters join the merge.
	sampled := false
	for _, ch := range r.Checks {
		if ch.Name == "every server was sampled every second" {
			sampled = ch.Outcome == reports.Pass
		}
	}
	if !sampled || r.Sampling == nil || len(r.Find(reports.SeriesServerMCGets)) == 0 {
		t.Errorf("the servers' counters are missing from the merge: sampled %v, %+v", sampled, r.Sampling)
	}
}

func mustGlob(t *testing.T, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) != 1 {
		t.Fatalf("%s: %v", pattern, m)
	}
	return m[0]
}

// A short nightly of the pipeline drill: results, report, JUnit, summary,
// no baseline said so; then its results saved as a baseline and listed.
func TestNightlyPipelineAndBaseline(t *testing.T) {
	bin, k6 := buildCLI(t)
	root := t.TempDir()
	out, baselines := filepath.Join(root, "nightly"), filepath.Join(root, "baselines")
	cmd := exec.Command(bin, "nightly", "--drills", "pipeline", "--repeats", "2", "--set", "duration=10",
		"--out", out, "--baselines", baselines, "--k6", k6, "--scenarios", "../../scenarios", "--release", "test")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("nightly: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	sum := stdout.String()
	if !strings.Contains(stderr.String(), "no baseline") || !strings.Contains(sum, "baseline: none") {
		t.Errorf("it should say there is no baseline:\n%s\n%s", sum, stderr.String())
	}
	if got := strings.Count(stderr.String(), "nightly: ["); got != 4 {
		t.Errorf("%d progress lines, want 4 (start and end of 2 runs):\n%s", got, stderr.String())
	}
	// Exit code and summary agree.
	if (err == nil) != strings.Contains(sum, "nightly: PASS") {
		t.Errorf("exit %v but summary:\n%s", err, sum)
	}
	for _, f := range []string{"report.html", "junit.xml", "summary.txt", "results/pipeline-default-1.json", "results/pipeline-default-2.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	save := exec.Command(bin, "baseline", "save", "--release", "v0.0-test", "--from", out, "--baselines", baselines)
	if b, err := save.CombinedOutput(); err != nil || !strings.Contains(string(b), "2 result(s)") {
		t.Fatalf("baseline save: %v\n%s", err, b)
	}
	list, err := exec.Command(bin, "baseline", "list", "--baselines", baselines).CombinedOutput()
	if err != nil || !strings.Contains(string(list), "v0.0-test") || !strings.Contains(string(list), "pipeline/default") {
		t.Fatalf("baseline list: %v\n%s", err, list)
	}
	// The saved baseline compares with the nightly's own results.
	cmp := exec.Command(bin, "compare", filepath.Join(baselines, "v0.0-test"), "--", filepath.Join(out, "results"), "-o", filepath.Join(root, "c.html"))
	if b, err := cmp.CombinedOutput(); err != nil {
		t.Fatalf("compare baseline with itself: %v\n%s", err, b)
	}
}
