//go:build browser

package reports

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium finds a headless-capable Chromium. Under the browser tag a
// missing browser is a failure: CI installs it, and a silently skipped test
// proves nothing.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: install it (apt-get install -y chromium) to run the browser tests")
	return ""
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	home := t.TempDir() // a fresh profile: no state from, or into, the user's
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
		"--user-data-dir=" + filepath.Join(home, "profile"),
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// TestReportInBrowser opens a rendered report in headless Chromium and
// checks what the page holds after the browser parsed it: the verdict table,
// every chart as SVG with drawn lines and fault windows, the incomplete
// banner; then takes a screenshot to look at.
func TestReportInBrowser(t *testing.T) {
	bin := chromium(t)
	out := t.TempDir()
	if dir := os.Getenv("FIREDRILL_SCREENSHOT_DIR"); dir != "" {
		out = dir
	} else if err := os.MkdirAll(filepath.Join("testdata", "out"), 0o755); err == nil {
		out, _ = filepath.Abs(filepath.Join("testdata", "out"))
	}
	rs := append(goldenResults(), fixture("plan-regression", "unprotected", 600, 9, 1), fixture("plan-regression", "protected", 600, 10, 1))
	var buf bytes.Buffer
	if err := RenderHTML(&buf, rs); err != nil {
		t.Fatal(err)
	}
	assertSelfContained(t, buf.String())
	page := filepath.Join(out, "report.html")
	if err := WriteFileAtomic(page, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	url := "file://" + page

	dom := string(runChromium(t, bin, "--dump-dom", url))
	checks := map[string]*regexp.Regexp{
		"verdict table":          regexp.MustCompile(`<table class="verdicts">`),
		"a failing verdict":      regexp.MustCompile(`<tr class="verdict fail-row">`),
		"incomplete banner":      regexp.MustCompile(`INCOMPLETE:</strong> connection-storm`),
		"latency chart":          regexp.MustCompile(`<svg class="chart" id="plan-regression-unprotected-latency"`),
		"connections vs cap":     regexp.MustCompile(`<svg class="chart" id="plan-regression-protected-conn"`),
		"the database's count":   regexp.MustCompile(`<svg class="chart" id="plan-regression-protected-db-server"`),
		"a drawn line":           regexp.MustCompile(`<polyline stroke="#[0-9a-f]{6}" points="[0-9]`),
		"a shaded fault window":  regexp.MustCompile(`<rect class="fw"`),
		"no data for a bare run": regexp.MustCompile(`>no data</text>`),
		"phase table":            regexp.MustCompile(`<table class="phases">`),
	}
	for what, re := range checks {
		if !re.MatchString(dom) {
			t.Errorf("rendered page lacks %s (%s)", what, re)
		}
	}
	want := 0
	for _, r := range rs {
		want += 6 // the client's view
		if r.Sampling != nil {
			want += 5 // and the servers' own
		}
	}
	if n := strings.Count(dom, `<svg class="chart"`); n != want {
		t.Errorf("rendered page has %d charts, want %d", n, want)
	}

	shot := filepath.Join(out, "report.png")
	runChromium(t, bin, "--window-size=1200,2600", "--screenshot="+shot, url)
	st, err := os.Stat(shot)
	if err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s missing or blank: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}

// TestComparisonInBrowser checks the comparison page renders its verdict
// and metric tables and marks the regression.
func TestComparisonInBrowser(t *testing.T) {
	bin := chromium(t)
	c, _ := goldenComparison(t)
	var buf bytes.Buffer
	if err := RenderCompareHTML(&buf, c); err != nil {
		t.Fatal(err)
	}
	assertSelfContained(t, buf.String())
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join("testdata", "out"), 0o755); err == nil {
		out, _ = filepath.Abs(filepath.Join("testdata", "out"))
	}
	page := filepath.Join(out, "compare.html")
	if err := WriteFileAtomic(page, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	dom := string(runChromium(t, bin, "--dump-dom", "file://"+page))
	for _, want := range []string{`<table class="verdicts compare">`, `<table class="metrics">`, `✗ REGRESSION`, `cannot tell`} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered comparison lacks %q", want)
		}
	}
	if n := strings.Count(dom, `<tr class="metric`); n != len(c.Metrics) {
		t.Errorf("%d metric rows, want %d", n, len(c.Metrics))
	}
	shot := filepath.Join(out, "compare.png")
	runChromium(t, bin, "--window-size=1200,1200", "--screenshot="+shot, "file://"+page)
	if st, err := os.Stat(shot); err != nil || st.Size() < 5_000 {
		t.Fatalf("screenshot %s missing or blank: %v", shot, err)
	}
}
