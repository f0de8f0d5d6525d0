//go:build integration

package harness

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/reports"
)

// drillCase is one drill run: --set name=value each, and --short for its
// @nightly short form, whose parameters every result must then carry.
type drillCase struct {
	name   string
	set    []string
	short  bool
	params map[string]string
	// extra are more flags: the service under test of an @app drill
	extra []string
	// dbArgs are the drill's @db server options, which each result must
	// record as the database's
	dbArgs []string
}

// drillCLI builds firedrill into a temporary folder; bin/k6 comes from
// `make k6`, which `make test` runs first.
func drillCLI(t *testing.T) (bin, k6 string) {
	t.Helper()
	bin = filepath.Join(t.TempDir(), "firedrill")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/firedrill")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build firedrill: %v\n%s", err, out)
	}
	k6, _ = filepath.Abs("../bin/k6")
	if _, err := os.Stat(k6); err != nil {
		t.Fatalf("bin/k6 missing (run `make k6`): %v", err)
	}
	return bin, k6
}

// exampleService are the flags that run an @app drill against the example
// service (examples/app, built by `make images`), with its firedrill.yaml:
// protections off in the unprotected profile, on in the protected one.
func exampleService(d Drill) []string {
	args := []string{"--config", "../examples/app/firedrill.yaml"}
	if d.App == 2 {
		args = append(args, "--app", "base=firedrill/example-app:v1", "--app", "head=firedrill/example-app:v2")
	}
	return args
}

// drillLeftovers lists what is still labelled with runID; other runs may
// share the engine, so only this run's count.
func drillLeftovers(t *testing.T, runID string) string {
	t.Helper()
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

// runDrillBothVerdicts runs every profile of the drill (unprotected, then
// protected) and asserts each reached the verdict the drill declares:
// unprotected broken (the incident's signature appeared), protected held.
func runDrillBothVerdicts(t *testing.T, bin, k6 string, c drillCase) {
	t.Helper()
	out := t.TempDir()
	args := []string{"run", c.name, "--out", out, "--k6", k6, "--scenarios", "../scenarios", "--quiet", "--timeout", "8m"}
	for _, s := range c.set {
		args = append(args, "--set", s)
	}
	if c.short {
		args = append(args, "--short")
	}
	args = append(args, c.extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 17*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("firedrill %s: %v in %s", strings.Join(args, " "), err, time.Since(start).Round(time.Second))
	paths, _ := filepath.Glob(filepath.Join(out, "*", "result.json"))
	got := map[string]*reports.Result{}
	for _, p := range paths {
		r, rerr := reports.ReadResult(p)
		if rerr != nil {
			t.Errorf("%s: %v", p, rerr)
			continue
		}
		got[r.Profile] = r
		var checks strings.Builder
		_ = reports.WriteChecksText(&checks, r)
		t.Logf("%s", checks.String())
		// the recovery rule's deciding window: the run's folder is gone
		// with the test, and a "not recovered" needs its figures
		if rc := r.Recovery; rc != nil && rc.Judged != nil {
			j := rc.Judged
			t.Logf("%s recovery: recovered=%v, reference mean %v ms; deciding window %v-%v s after the removal: mean %v ms, band %v ms, unserved %v",
				r.Profile, rc.Recovered, rc.BeforeMeanMs, j.FromS, j.ToS, j.MeanMs, j.BandMs, j.Unserved)
		}
	}
	if err != nil {
		t.Errorf("firedrill run %s: %v\nstdout:\n%s\nstderr:\n%s", c.name, err, stdout.String(), stderr.String())
	}
	want := map[string]string{"unprotected": reports.Broken, "protected": reports.Held}
	for profile, verdict := range want {
		r := got[profile]
		if r == nil {
			t.Errorf("%s: no result for profile %s", c.name, profile)
			continue
		}
		if !r.Complete || r.Verdict.Reached != verdict || !r.Verdict.Pass {
			t.Errorf("%s %s: complete=%v verdict=%+v incomplete=%q", c.name, profile, r.Complete, r.Verdict, r.IncompleteReason)
		}
		if !slices.Equal(r.Environment.DBArgs, c.dbArgs) {
			t.Errorf("%s %s: the database started with %q, want the drill's @db %q", c.name, profile, r.Environment.DBArgs, c.dbArgs)
		}
		for k, v := range c.params {
			if r.Parameters[k] != v {
				t.Errorf("%s %s: parameter %s=%q, want %q (the short form)", c.name, profile, k, r.Parameters[k], v)
			}
		}
	}
	for _, r := range got {
		if l := drillLeftovers(t, r.RunID); l != "" {
			t.Errorf("containers or networks left behind after %s %s: %s", c.name, r.Profile, l)
		}
	}
}
