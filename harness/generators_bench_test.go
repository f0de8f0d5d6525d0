//go:build bench

package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/reports"
)

// burn is a CPU-bound closed-loop load with one VU per generator (as a
// drill's traffic scenario split over generators has): what one generator
// can drive is bounded by one core, so N generators should drive about N
// times as much until the cores run out.
const burn = `
const G = parseInt(__ENV.FIREDRILL_GENERATORS || '1', 10);
const VUS = parseInt(__ENV.BENCH_VUS || '0', 10) || G;
export const options = {
  scenarios: { burn: { executor: 'constant-vus', vus: VUS, duration: __ENV.BENCH_DURATION || '8s' } },
  thresholds: { iterations: ['count>0'] },
};
export default function () {
  let x = 0;
  for (let i = 0; i < 20000; i++) { x += i % 7; }
  if (x < 0) console.log(x);
}
`

// TestGeneratorScaling runs the burn script through the harness's own
// generator path (paused start, setup once, release together, merge) with
// 1, 2 and 3 generators and writes the merged iteration rates to
// bench/generators.txt. Run by `make bench`.
func TestGeneratorScaling(t *testing.T) {
	k6, _ := filepath.Abs("../bin/k6")
	if _, err := os.Stat(k6); err != nil {
		t.Fatalf("bin/k6 missing (make k6): %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "burn.js")
	os.WriteFile(script, []byte(burn), 0o644)
	dur := 8 * time.Second
	type row struct {
		label string
		n     int
		vus   int
		rate  float64
	}
	var rows []row
	measure := func(label string, n, vus int) float64 {
		out := filepath.Join(dir, fmt.Sprintf("%s-%d-%d", label, n, vus))
		os.MkdirAll(out, 0o755)
		vars := []string{"K6_NO_USAGE_REPORT=true", "BENCH_DURATION=" + dur.String()}
		if vus > 0 {
			vars = append(vars, fmt.Sprintf("BENCH_VUS=%d", vus))
		}
		o := RunOptions{K6: k6, Drill: Drill{Name: "burn", Path: script}, Profile: "default", Progress: os.Stderr}
		res := &reports.Result{}
		var err error
		if n == 1 {
			// One generator through the same path (N=1 segments 0:1).
			err = runGenerators(context.Background(), o, res, out, vars, 1)
		} else {
			err = runGenerators(context.Background(), o, res, out, vars, n)
		}
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		var count float64
		for _, th := range res.Thresholds {
			if th.Metric == "iterations" && th.Value != nil {
				count = float64(*th.Value)
			}
		}
		rate := count / dur.Seconds()
		rows = append(rows, row{label, n, vus, rate})
		t.Logf("%s: %.0f iterations/s", label, rate)
		return rate
	}
	one := measure("1 generator, 1 VU", 1, 0)
	two := measure("2 generators, 1 VU each", 2, 0)
	three := measure("3 generators, 1 VU each", 3, 0)
	single2 := measure("1 generator, 2 VUs", 1, 2)

	load, _ := os.ReadFile("/proc/loadavg")
	var b strings.Builder
	fmt.Fprintf(&b, "# firedrill run --generators: merged load of N local generators (make bench)\n")
	fmt.Fprintf(&b, "# %s, %d cores (runtime.NumCPU), load average before: %s", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), load)
	if out, err := exec.Command("nproc").Output(); err == nil {
		fmt.Fprintf(&b, "# nproc: %s", out)
	}
	fmt.Fprintf(&b, "# workload: CPU-bound closed loop, one VU per generator (a drill's traffic\n")
	fmt.Fprintf(&b, "# scenario split over generators), %s, iterations counted from the merged\n", dur)
	fmt.Fprintf(&b, "# samples of every generator (thresholds judged on the merge).\n\n")
	fmt.Fprintf(&b, "%-28s %14s %8s\n", "setup", "iterations/s", "x one")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-28s %14.0f %8.2f\n", r.label, r.rate, r.rate/one)
	}
	fmt.Fprintf(&b, "\n2 generators drive %.2fx one; 3 generators %.2fx (the machine has %d cores:\n", two/one, three/one, runtime.NumCPU())
	fmt.Fprintf(&b, "past them more generators add no load). One k6 with 2 VUs: %.2fx.\n", single2/one)
	fmt.Fprintf(&b, "Merge exactness (HDR percentiles of the merge = percentiles of all samples)\n")
	fmt.Fprintf(&b, "is the unit test harness.TestMergeOutputsIsExact.\n")
	if err := os.WriteFile("../bench/generators.txt", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
}
