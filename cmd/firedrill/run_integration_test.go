//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/reports"
)

// buildCLI builds firedrill into a temporary folder; bin/k6 comes from
// `make k6`, which `make test` runs first.
func buildCLI(t *testing.T) (bin, k6 string) {
	t.Helper()
	bin = filepath.Join(t.TempDir(), "firedrill")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build firedrill: %v\n%s", err, out)
	}
	k6, _ = filepath.Abs("../../bin/k6")
	if _, err := os.Stat(k6); err != nil {
		t.Fatalf("bin/k6 missing (run `make k6`): %v", err)
	}
	return bin, k6
}

// leftovers lists what is still labelled with runID. Other runs (a
// developer's env up) may share the engine, so only this run's count.
func leftovers(t *testing.T, runID string) string {
	t.Helper()
	if runID == "" {
		t.Fatal("no run id to check")
	}
	c, err := exec.Command("docker", "ps", "-aq", "--filter", "label=firedrill.run="+runID).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	n, err := exec.Command("docker", "network", "ls", "-q", "--filter", "label=firedrill.run="+runID).Output()
	if err != nil {
		t.Fatalf("docker network ls: %v", err)
	}
	return strings.TrimSpace(string(c) + string(n))
}

func readOnlyResult(t *testing.T, out string) *reports.Result {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(out, "*", "result.json"))
	if len(paths) != 1 {
		t.Fatalf("want one result.json under %s, got %v", out, paths)
	}
	r, err := reports.ReadResult(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunPipelineEndToEnd(t *testing.T) {
	bin, k6 := buildCLI(t)
	out := t.TempDir()
	cmd := exec.Command(bin, "run", "pipeline", "--out", out, "--k6", k6, "--scenarios", "../../scenarios",
		"--set", "duration=15", "--quiet", "--release", "test-release")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("firedrill run pipeline: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	// It prints the paths of files that exist.
	lines := strings.Fields(stdout.String())
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "result.json") || !strings.HasSuffix(lines[1], "report.html") {
		t.Fatalf("stdout = %q", stdout.String())
	}
	for _, p := range lines {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("printed path does not exist: %v", err)
		}
	}
	for _, want := range []string{"env: starting", "k6:", "env: removing"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no progress line %q in:\n%s", want, stderr.String())
		}
	}
	r := readOnlyResult(t, out)
	if !r.Complete || r.Verdict.Reached != reports.Held || !r.Verdict.Pass || r.Release != "test-release" {
		t.Fatalf("result: complete=%v verdict=%+v release=%q reason=%q", r.Complete, r.Verdict, r.Release, r.IncompleteReason)
	}
	// The latency toxic was injected and removed on every memcached proxy.
	injected, removed := map[string]float64{}, map[string]float64{}
	for _, e := range r.Events {
		if e.Fault == "latency" && e.Action == "inject" {
			injected[e.Target] = e.At
		}
		if e.Fault == "latency" && e.Action == "remove" {
			removed[e.Target] = e.At
		}
	}
	if len(injected) != 3 || len(removed) != 3 {
		t.Fatalf("latency events: injected %v removed %v", injected, removed)
	}
	// And it is visible in the measurements: fetches were slower during the
	// fault window than before it.
	var after, during float64
	for _, ph := range r.Phases {
		v := float64(ph.Summary["fetch_p50"])
		switch ph.Name {
		case "after":
			after = v
		case "latency":
			during = v
		}
	}
	// Compared with the time after the toxic: the start of a run also
	// carries connection set-up and cache warm-up.
	if during < after+25 {
		t.Errorf("median fetch latency during the 50 ms toxic %.2f ms, after it %.2f ms: the toxic is not visible", during, after)
	}
	report, err := os.ReadFile(lines[1])
	if err != nil || !bytes.Contains(report, []byte("pipeline")) || !bytes.Contains(report, []byte("<svg")) {
		t.Errorf("report.html lacks the drill or its charts (err %v)", err)
	}
	if left := leftovers(t, r.RunID); left != "" {
		t.Errorf("left behind: %s", left)
	}
}

// A run whose precondition fails is invalid, with its own exit code, never
// "incident reproduced"; a profile declared broken that shows one of its
// two signatures is partial, a missed verdict. The test drills are in
// scenarios/testdata.
func TestVerdictExitCodes(t *testing.T) {
	bin, k6 := buildCLI(t)
	for _, c := range []struct {
		drill   string
		code    int
		reached string
		check   func(*reports.Result) string
	}{
		{"verdict-invalid", exitInvalid, reports.Invalid, func(r *reports.Result) string {
			if !strings.Contains(r.Verdict.Reason, "the cache was warm before the fault") {
				return "the reason does not name the failed precondition: " + r.Verdict.Reason
			}
			return ""
		}},
		{"verdict-partial", exitMissed, reports.Partial, func(r *reports.Result) string {
			if strings.Join(r.Verdict.Observed, ",") != "fetches slow down" || strings.Join(r.Verdict.NotObserved, ",") != "a million fetches fail" {
				return fmt.Sprintf("observed %q, not observed %q", r.Verdict.Observed, r.Verdict.NotObserved)
			}
			return ""
		}},
	} {
		t.Run(c.drill, func(t *testing.T) {
			out := t.TempDir()
			cmd := exec.Command(bin, "run", c.drill, "--out", out, "--k6", k6, "--scenarios", "../../scenarios/testdata", "--quiet")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code {
				t.Fatalf("exit %v, want code %d\n%s", err, c.code, stderr.String())
			}
			r := readOnlyResult(t, out)
			if !r.Complete || r.Verdict.Reached != c.reached || r.Verdict.Pass {
				t.Fatalf("verdict %+v, want %s", r.Verdict, c.reached)
			}
			if msg := c.check(r); msg != "" {
				t.Error(msg)
			}
			if left := leftovers(t, r.RunID); left != "" {
				t.Errorf("left behind: %s", left)
			}
		})
	}
}

// Ctrl-C during a run stops k6, writes an incomplete result and removes
// everything the run started.
func TestInterruptedRunLeavesNothing(t *testing.T) {
	bin, k6 := buildCLI(t)
	out := t.TempDir()
	cmd := exec.Command(bin, "run", "pipeline", "--out", out, "--k6", k6, "--scenarios", "../../scenarios",
		"--set", "duration=120", "--quiet")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until k6 runs, then interrupt as a terminal's Ctrl-C would.
	started := make(chan struct{})
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !once && strings.HasPrefix(sc.Text(), "k6:") {
				once = true
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("k6 never started:\n%s", log.String())
	}
	time.Sleep(8 * time.Second)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("an interrupted run exited 0")
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("firedrill did not stop within 2 minutes of SIGINT")
	}
	r := readOnlyResult(t, out)
	if r.Complete || !strings.Contains(r.IncompleteReason, "interrupt") {
		t.Errorf("result complete=%v reason=%q", r.Complete, r.IncompleteReason)
	}
	if left := leftovers(t, r.RunID); left != "" {
		t.Errorf("left behind after Ctrl-C: %s", left)
	}
}

// --timeout stops a run that goes on too long, and still tears it down.
func TestRunTimeout(t *testing.T) {
	bin, k6 := buildCLI(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "pipeline", "--out", out, "--k6", k6, "--scenarios", "../../scenarios",
		"--set", "duration=120", "--quiet", "--timeout", "25s")
	outb, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a timed-out run exited 0:\n%s", outb)
	}
	r := readOnlyResult(t, out)
	if r.Complete || !strings.Contains(r.IncompleteReason, "timeout") {
		t.Errorf("result complete=%v reason=%q", r.Complete, r.IncompleteReason)
	}
	if left := leftovers(t, r.RunID); left != "" {
		t.Errorf("left behind after the timeout: %s", left)
	}
}
