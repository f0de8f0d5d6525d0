//go:build integration

package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Ctrl-C during a drill of a service, once the service is healthy and k6
// drives it: the run exits non-zero with an incomplete result, the
// service's logs are kept, the next profile does not start, and nothing
// labelled with the run (the service's container, the servers, the
// network) is left.
func TestInterruptedServiceRunLeavesNothing(t *testing.T) {
	bin, k6 := buildCLI(t)
	out := t.TempDir()
	cmd := exec.Command(bin, "run", "app-slow-database", "--short", "--config", "../../examples/app/firedrill.yaml",
		"--k6", k6, "--scenarios", "../../scenarios", "--quiet", "--out", out)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var log bytes.Buffer
	logged := func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
	runID := make(chan string, 1)
	driving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`starting run (fd-\S+):`)
		healthy, once := false, false
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			log.WriteString(line + "\n")
			mu.Unlock()
			if m := re.FindStringSubmatch(line); m != nil {
				select {
				case runID <- m[1]:
				default:
				}
			}
			healthy = healthy || strings.Contains(line, "healthy at")
			if healthy && !once && strings.HasPrefix(line, "k6:") {
				once = true
				close(driving)
			}
		}
	}()
	var id string
	select {
	case id = <-runID:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("the run never started:\n%s", logged())
	}
	select {
	case <-driving:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("k6 never drove the healthy service:\n%s", logged())
	}
	// Well into the traffic, the service serving and sampled.
	time.Sleep(5 * time.Second)
	interrupted := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("an interrupted run exited 0:\n%s", logged())
		}
		t.Logf("stopped %s after SIGINT, exit %v", time.Since(interrupted).Round(100*time.Millisecond), err)
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("firedrill did not stop within 2 minutes of SIGINT:\n%s", logged())
	}
	r := readOnlyResult(t, out) // one: the next profile never started
	if r.RunID != id {
		t.Errorf("result of run %s, the progress named %s", r.RunID, id)
	}
	if r.Complete || !strings.Contains(r.IncompleteReason, "interrupt") {
		t.Errorf("result complete=%v reason=%q", r.Complete, r.IncompleteReason)
	}
	if m, _ := filepath.Glob(filepath.Join(out, "*", "app-app.log")); len(m) != 1 {
		t.Error("no app-app.log in the run folder")
	} else if b, _ := os.ReadFile(m[0]); !strings.Contains(string(b), "listening on") {
		t.Errorf("app-app.log holds no service output: %q", b)
	}
	if left := leftovers(t, id); left != "" {
		t.Errorf("left behind after Ctrl-C: %s\n%s", left, logged())
	}
}
