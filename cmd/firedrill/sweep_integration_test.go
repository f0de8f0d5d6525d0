//go:build integration

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firedrill-dev/firedrill/reports"
	"github.com/firedrill-dev/firedrill/sweep"
)

// A tiny grid of the pipeline drill, each cell in its own environment: the
// map links every cell to a real report, nothing is left running, and the
// same command again finds nothing left to run.
func TestSweepTinyGrid(t *testing.T) {
	bin, k6 := buildCLI(t)
	out := filepath.Join(t.TempDir(), "sweep")
	args := []string{"sweep", "pipeline", "--vary", "rate=300,600", "--set", "duration=10", "--out", out, "--k6", k6,
		"--scenarios", "../../scenarios", "--memcached", "1"}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sweep: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	s, err := sweep.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cells) != 2 || !s.Complete {
		t.Fatalf("%d cells, complete %v: want 2, true\n%s", len(s.Cells), s.Complete, stderr.String())
	}
	for _, c := range s.Cells {
		if c.Verdict != "held" || c.Load == nil || c.DBRatePeak == nil {
			t.Errorf("cell %v: verdict %q, load %v, peak %v: want held, both measured", c.Params, c.Verdict, c.Load, c.DBRatePeak)
		}
		if _, err := os.Stat(filepath.Join(out, c.Report)); err != nil {
			t.Errorf("cell %v links a report that is not there: %v", c.Params, err)
		}
	}
	// the offered load follows the axis
	if a, b := *s.Cells[0].Load, *s.Cells[1].Load; !(a > 250 && a < 350 && b > 550 && b < 650) {
		t.Errorf("offered load before the toxic %v and %v, want about 300 and 600", a, b)
	}
	html, _ := os.ReadFile(filepath.Join(out, sweep.HTMLFile))
	if !bytes.Contains(html, []byte(`class="cell up" href="runs/pipeline-default-`)) {
		t.Errorf("the map has no linked, coloured cell:\n%s", html)
	}
	if !strings.Contains(stdout.String(), "rate") || !strings.Contains(stdout.String(), "held") {
		t.Errorf("the text map:\n%s", stdout.String())
	}
	paths, _ := filepath.Glob(filepath.Join(out, "runs", "*", "result.json"))
	if len(paths) != 2 {
		t.Fatalf("run folders %v, want 2", paths)
	}
	for _, p := range paths {
		r, err := reports.ReadResult(p)
		if err != nil {
			t.Fatal(err)
		}
		if left := leftovers(t, r.RunID); left != "" {
			t.Errorf("left behind: %s", left)
		}
	}
	// resuming a finished sweep runs nothing
	stdout.Reset()
	stderr.Reset()
	cmd = exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sweep again: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "2 of 2 cells done, 0 to run") || strings.Contains(stderr.String(), "[1/") {
		t.Errorf("a finished sweep ran again:\n%s", stderr.String())
	}
}
