//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/reports"
)

// exampleFlags run a drill against one release of the example service with
// flags alone (no firedrill.yaml): one configuration, so the drill judges
// its steady state in the profile that must hold.
func exampleFlags(release string) []string {
	return []string{"--app", environments.ExampleAppImage(release), "--seed-sql", "../../examples/app/seed.sql",
		"--app-env", "DB_DSN={{mysql.dsn}}?timeout=2s", "--app-env", "MEMCACHED={{memcached.servers}}", "--app-env", "TIER={{tier.servers}}", "--app-metrics", "/metrics"}
}

func runCLI(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("firedrill %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// One drill against example v1, saved as a baseline; the same drill
// against v2; `firedrill compare` reports v2's regression (a steady state
// v1 kept and v2 did not) and exits non-zero.
func TestCompareReleasesOfTheExampleService(t *testing.T) {
	bin, k6 := buildCLI(t)
	base, head, baselines := t.TempDir(), t.TempDir(), t.TempDir()
	common := []string{"run", "app-cache-unreachable", "--short", "--k6", k6, "--scenarios", "../../scenarios", "--quiet"}

	_, stderr, code := runCLI(t, bin, append(append(common, "--out", base), exampleFlags("v1")...)...)
	if code != 0 {
		t.Fatalf("v1: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "one configuration") {
		t.Errorf("v1: the run did not say it judges one configuration's steady state:\n%s", stderr)
	}
	r1 := readOnlyResult(t, base)
	if r1.Profile != "protected" || r1.Verdict.Reached != reports.Held {
		t.Errorf("v1: profile %s, verdict %+v; want the held profile, held", r1.Profile, r1.Verdict)
	}
	if !regexp.MustCompile(`^v1-[0-9a-f]{12}$`).MatchString(r1.Release) {
		t.Errorf("v1: release %q, want the image's tag and short id", r1.Release)
	}
	if len(r1.Environment.Apps) != 1 || r1.Environment.Apps[0].Image != environments.ExampleAppImage("v1") {
		t.Errorf("v1: apps in the result = %+v", r1.Environment.Apps)
	}
	if s := r1.Find("app_example_requests_total_rate"); len(s) == 0 {
		t.Error("v1: the service's Prometheus metrics are not in the result's series")
	}
	if m, _ := filepath.Glob(filepath.Join(base, "*", "app-app.log")); len(m) != 1 {
		t.Error("v1: no app-app.log in the run folder")
	} else if b, _ := os.ReadFile(m[0]); !strings.Contains(string(b), "listening on") {
		t.Errorf("v1: app-app.log holds no service output: %q", b)
	}
	if left := leftovers(t, r1.RunID); left != "" {
		t.Errorf("v1: left behind: %s", left)
	}

	if _, stderr, code := runCLI(t, bin, "baseline", "save", "--release", r1.Release, "--from", base, "--baselines", baselines); code != 0 {
		t.Fatalf("baseline save: exit %d\n%s", code, stderr)
	}

	_, stderr, code = runCLI(t, bin, append(append(common, "--out", head), exampleFlags("v2")...)...)
	r2 := readOnlyResult(t, head)
	if code != 1 || r2.Verdict.Reached != reports.Broken {
		t.Errorf("v2: exit %d, verdict %+v; want 1 and broken (no breaker, a 2 s timeout)\n%s", code, r2.Verdict, stderr)
	}
	if !strings.HasPrefix(r2.Release, "v2-") {
		t.Errorf("v2: release %q", r2.Release)
	}

	headResult := mustGlob(t, filepath.Join(head, "*", "result.json"))
	stdout, stderr, code := runCLI(t, bin, "compare", filepath.Join(baselines, r1.Release), "--", headResult, "-o", filepath.Join(t.TempDir(), "compare.html"))
	t.Logf("compare:\n%s%s", stdout, stderr)
	if code != 1 {
		t.Errorf("compare exited %d over a release whose steady state broke, want 1", code)
	}
	if !strings.Contains(stdout, `steady "requests stay fast"`) || !strings.Contains(stdout, "REGRESSION") ||
		!strings.Contains(stdout, "base "+r1.Release+" vs head "+r2.Release) {
		t.Errorf("compare did not name the releases and the regressed steady state:\n%s%s", stdout, stderr)
	}
}

// Bad input after Docker answers: each is one clear error naming what is
// wrong, a non-zero exit, and nothing of the run left.
func TestServiceBadInput(t *testing.T) {
	bin, k6 := buildCLI(t)
	common := []string{"run", "app-cache-unreachable", "--short", "--k6", k6, "--scenarios", "../../scenarios", "--quiet"}
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
		code  int
	}{
		{"image not local", []string{"--app", "firedrill/no-such-image:v9"}, "image firedrill/no-such-image:v9 is not in the local Docker engine", 2},
		{"port not listening", append(exampleFlags("v1"), "--app-port", "9999", "--app-startup", "6s"), "nothing answered HTTP on container port 9999", 4},
		{"health never passes", append(exampleFlags("v1"), "--app-health", "/no-such-check", "--app-startup", "6s"), "health check GET /no-such-check never passed", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			_, stderr, code := runCLI(t, bin, append(append(common, "--out", out), tc.flags...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want %d; stderr should say %q:\n%s", code, tc.code, tc.want, stderr)
			}
			paths, _ := filepath.Glob(filepath.Join(out, "*", "result.json"))
			for _, p := range paths {
				r, err := reports.ReadResult(p)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(r.IncompleteReason, tc.want) {
					t.Errorf("result's reason %q does not say %q", r.IncompleteReason, tc.want)
				}
				if tc.code == 4 && !strings.Contains(r.IncompleteReason, "its last log lines") {
					t.Errorf("result's reason has no log lines of the service: %q", r.IncompleteReason)
				}
				if left := leftovers(t, r.RunID); left != "" {
					t.Errorf("left behind: %s", left)
				}
			}
			if tc.code == 4 && len(paths) != 1 {
				t.Errorf("want one result.json of the failed run, got %v", paths)
			}
			if tc.code == 2 && len(paths) != 0 {
				t.Errorf("a bad argument started a run: %v", paths)
			}
		})
	}
}

// A harness killed with SIGKILL leaves the service's container behind,
// labelled with its run; the reaper (every new environment, `firedrill
// env down`) removes it with the rest.
func TestKilledRunsServiceIsReaped(t *testing.T) {
	bin, k6 := buildCLI(t)
	cmd := exec.Command(bin, append([]string{"run", "app-slow-database", "--short", "--k6", k6, "--scenarios", "../../scenarios",
		"--quiet", "--out", t.TempDir()}, exampleFlags("v1")...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	runID := make(chan string, 1)
	healthy := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`starting run (fd-\S+):`)
		once := false
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				runID <- m[1]
			}
			if !once && strings.Contains(sc.Text(), "healthy at") {
				once = true
				close(healthy)
			}
		}
	}()
	var id string
	select {
	case id = <-runID:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the run never started")
	}
	select {
	case <-healthy:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the service never became healthy")
	}
	// Killed before k6 starts: nothing but the containers outlives it.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=firedrill.run="+id, "--filter", "label=firedrill.service=app-app").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) == "" {
		t.Fatal("no service container of the killed run: the test proves nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := environments.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, id); left != "" {
		t.Errorf("left after reaping: %s", left)
	}
}
