package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A release measured after `make bench` is not "-dirty": the benchmark
// rewrote its figures under bench/, not the code under test. The CLI's
// default --release and the Makefile's VERSION (scripts/version.sh) agree.
func TestReleaseLabelIgnoresBenchmarkFigures(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	script, err := filepath.Abs("../../scripts/version.sh")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	// Neither the user's git configuration nor a repository around the
	// temporary folder may change the answers.
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(root))
	if got := releaseLabel(root); got != "unversioned" {
		t.Errorf("outside a repository: %q, want unversioned", got)
	}
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	write("bench/generators.txt", "1 generator: 1000 ops/s\n")
	write("harness/run.go", "package harness\n")
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "v1.0")
	git("tag", "v1.0")

	for _, step := range []struct {
		name, file, body, want string
	}{
		{"clean", "", "", "v1.0"},
		{"benchmark figures rewritten", "bench/generators.txt", "1 generator: 1100 ops/s\n", "v1.0"},
		{"an untracked file", "notes.txt", "x", "v1.0"},
		{"the code changed", "harness/run.go", "package harness // changed\n", "v1.0-dirty"},
	} {
		if step.file != "" {
			write(step.file, step.body)
		}
		// From a subfolder too: the whole tree counts, bench/ excepted.
		for _, dir := range []string{root, filepath.Join(root, "bench")} {
			if got := releaseLabel(dir); got != step.want {
				t.Errorf("%s, from %s: releaseLabel = %q, want %q", step.name, dir, got, step.want)
			}
			cmd := exec.Command("sh", script)
			cmd.Dir = dir
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", script, err)
			}
			if got := strings.TrimSpace(string(out)); got != step.want {
				t.Errorf("%s, from %s: scripts/version.sh = %q, want %q", step.name, dir, got, step.want)
			}
		}
	}
}
