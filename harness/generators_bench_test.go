//go:build bench

package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/reports"
)

// drillRate is the pipeline drill's offered load for the drill section,
// high enough that one generator is the limit: measured on 2 cores, at
// 8,000 fetches/s one generator served all on schedule (the two setups
// alike), at 20,000 it still served them but a third started late (its
// dispatcher behind the schedule), two generators 1%.
const drillRate = 20000

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
	type config struct {
		label  string
		n, vus int
	}
	configs := []config{
		{"1 generator, 1 VU", 1, 0},
		{"2 generators, 1 VU each", 2, 0},
		{"3 generators, 1 VU each", 3, 0},
		{"1 generator, 2 VUs", 1, 2},
	}
	type sample struct{ rate, cpu float64 }
	results := make([][]sample, len(configs))
	childCPU := func() float64 {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
		return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	measure := func(c config, round int) sample {
		out := filepath.Join(dir, fmt.Sprintf("%d-%d-%d", round, c.n, c.vus))
		os.MkdirAll(out, 0o755)
		vars := []string{"K6_NO_USAGE_REPORT=true", "BENCH_DURATION=" + dur.String()}
		if c.vus > 0 {
			vars = append(vars, fmt.Sprintf("BENCH_VUS=%d", c.vus))
		}
		o := RunOptions{K6: k6, Drill: Drill{Name: "burn", Path: script}, Profile: "default"}
		res := &reports.Result{}
		cpu0 := childCPU()
		// No environment: no spec to judge, no servers to sample.
		if err := runGenerators(context.Background(), o, res, out, vars, c.n, nil, nil, ""); err != nil {
			t.Fatalf("%s: %v", c.label, err)
		}
		cpu := childCPU() - cpu0
		var count float64
		for _, th := range res.Thresholds {
			if th.Metric == "iterations" && th.Value != nil {
				count = float64(*th.Value)
			}
		}
		t.Logf("round %d, %s: %.0f iterations/s, %.1f CPU-s", round, c.label, count/dur.Seconds(), cpu)
		return sample{count / dur.Seconds(), cpu}
	}
	// Interleaved rounds, medians: the machine is shared, its load drifts.
	const rounds = 3
	for r := 0; r < rounds; r++ {
		for i, c := range configs {
			results[i] = append(results[i], measure(c, r))
		}
	}
	med := func(xs []float64) float64 {
		s := append([]float64(nil), xs...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	rate := make([]float64, len(configs))
	perCPU := make([]float64, len(configs))
	cores := make([]float64, len(configs))
	for i := range configs {
		var rs, pc, cs []float64
		for _, x := range results[i] {
			rs = append(rs, x.rate)
			// CPU-s includes each k6's start-up (init, JSON output); the
			// rate per CPU-second is still comparable between setups.
			pc = append(pc, x.rate*dur.Seconds()/x.cpu)
			cs = append(cs, x.cpu/dur.Seconds())
		}
		rate[i], perCPU[i], cores[i] = med(rs), med(pc), med(cs)
	}

	load, _ := os.ReadFile("/proc/loadavg")
	var b strings.Builder
	fmt.Fprintf(&b, "# firedrill run --generators: merged load of N local generators (make bench)\n")
	fmt.Fprintf(&b, "# %s, %d cores, load average after: %s", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), load)
	fmt.Fprintf(&b, "# workload: CPU-bound closed loop, one VU per generator (a drill's traffic\n")
	fmt.Fprintf(&b, "# scenario split over generators), %s a run, through the harness's generator\n", dur)
	fmt.Fprintf(&b, "# path (paused, setup once, released together); iterations counted from the\n")
	fmt.Fprintf(&b, "# merged samples. Median of %d interleaved rounds. cores used = CPU-s of the\n", rounds)
	fmt.Fprintf(&b, "# k6 processes / wall s (start-up included).\n\n")
	fmt.Fprintf(&b, "%-26s %12s %7s %11s %12s\n", "setup", "iter/s", "x one", "cores used", "iter/CPU-s")
	for i, c := range configs {
		fmt.Fprintf(&b, "%-26s %12.0f %7.2f %11.2f %12.0f\n", c.label, rate[i], rate[i]/rate[0], cores[i], perCPU[i])
	}
	fmt.Fprintf(&b, "\nrounds (iter/s):\n")
	for i, c := range configs {
		var xs []string
		for _, x := range results[i] {
			xs = append(xs, fmt.Sprintf("%.0f", x.rate))
		}
		fmt.Fprintf(&b, "  %-26s %s\n", c.label, strings.Join(xs, " "))
	}
	b.WriteString(drillTraffic(t, k6))
	fmt.Fprintf(&b, "\nMerge exactness (HDR percentiles of the merge = percentiles of all samples,\n")
	fmt.Fprintf(&b, "counters summed, thresholds on the merge) is the unit test\n")
	fmt.Fprintf(&b, "harness.TestMergeOutputsIsExact.\n")
	if err := os.WriteFile("../bench/generators.txt", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
}

// drillTraffic runs the pipeline drill, a real drill's traffic through
// Toxiproxy to memcached and the database in a real environment, with 1
// and 2 generators at the same total offered load (drillRate), and
// returns its section of bench/generators.txt: fetches served per second
// (the client's merged count and memcached's own cmd_get, which must tell
// the same story), the share of fetches that started late, and fetches
// per k6 CPU-second.
func drillTraffic(t *testing.T, k6 string) string {
	d, err := FindDrill("../scenarios", "pipeline")
	if err != nil {
		t.Fatal(err)
	}
	childCPU := func() float64 {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
		return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	type sample struct{ served, memcached, late, perCPU, cores float64 }
	const rounds = 3
	ns := []int{1, 2}
	results := make([][]sample, len(ns))
	out := t.TempDir()
	for r := 0; r < rounds; r++ {
		for i, n := range ns {
			cpu0 := childCPU()
			res, _, err := Run(context.Background(), RunOptions{
				Drill: d, Profile: "default", OutDir: out, K6: k6, Memcached: 3, Generators: n, Timeout: 5 * time.Minute,
				Params: map[string]string{"rate": fmt.Sprint(drillRate)},
			})
			if err != nil {
				t.Fatalf("pipeline at %d/s, %d generators: %v", drillRate, n, err)
			}
			cpu := childCPU() - cpu0
			var run reports.Phase
			for _, p := range res.Phases {
				if p.Name == "run" {
					run = p
				}
			}
			v := func(k string) float64 { return float64(run.Summary[k]) }
			dur := v("duration_s")
			if dur <= 0 || v("offered") <= 0 {
				t.Fatalf("pipeline, %d generators: no traffic in the result (%v)", n, run.Summary)
			}
			served := v("served_ratio") * v("offered") / dur
			s := sample{served: served, memcached: v("server_mc_cmd_get_rate"), late: v("late") / v("offered"),
				perCPU: served * dur / cpu, cores: cpu / dur}
			t.Logf("round %d, %d generators: served %.0f/s, memcached cmd_get %.0f/s, late %.3f, %.2f cores of k6",
				r, n, s.served, s.memcached, s.late, s.cores)
			results[i] = append(results[i], s)
		}
	}
	med := func(f func(sample) float64, xs []sample) float64 {
		v := make([]float64, len(xs))
		for i, x := range xs {
			v[i] = f(x)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n# workload: the pipeline drill (a real drill's traffic: Toxiproxy, 3 memcached,\n")
	fmt.Fprintf(&b, "# the database, its 50 ms toxic mid-run) at %d fetches/s offered in all, split\n", drillRate)
	fmt.Fprintf(&b, "# over the generators; environment per run, on the same 2 cores. served and\n")
	fmt.Fprintf(&b, "# late from the merged result, memcached's own cmd_get beside the client's\n")
	fmt.Fprintf(&b, "# count; cores used = CPU-s of the k6 processes / traffic s. Median of %d\n", rounds)
	fmt.Fprintf(&b, "# interleaved rounds.\n\n")
	fmt.Fprintf(&b, "%-26s %10s %7s %13s %6s %11s %13s\n", "setup", "served/s", "x one", "mc cmd_get/s", "late", "cores used", "fetch/CPU-s")
	one := med(func(x sample) float64 { return x.served }, results[0])
	for i, n := range ns {
		served := med(func(x sample) float64 { return x.served }, results[i])
		fmt.Fprintf(&b, "%-26s %10.0f %7.2f %13.0f %6.3f %11.2f %13.0f\n", fmt.Sprintf("pipeline, %d generator(s)", n), served, served/one,
			med(func(x sample) float64 { return x.memcached }, results[i]), med(func(x sample) float64 { return x.late }, results[i]),
			med(func(x sample) float64 { return x.cores }, results[i]), med(func(x sample) float64 { return x.perCPU }, results[i]))
	}
	return b.String()
}
