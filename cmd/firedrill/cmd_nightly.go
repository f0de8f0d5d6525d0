package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/harness"
	"github.com/firedrill-dev/firedrill/nightly"
	"github.com/firedrill-dev/firedrill/reports"
)

// nightlyCmd runs every drill in every profile, R times, and reports:
//
//	firedrill nightly [--out DIR] [--repeats 3] [--baseline RELEASE|DIR] [--drills a,b] [--full] ...
func nightlyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nightly", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "folder for everything the nightly writes (default out/nightly-<time>)")
	repeats := fs.Int("repeats", nightly.DefaultRepeats, "runs of each drill and profile; 3 is the fewest that can show a significant regression (see below)")
	baseline := fs.String("baseline", "latest", "baseline to compare with: a release label under --baselines, a folder of results, latest (the highest release saved) or none")
	baselines := fs.String("baselines", "baselines", "folder of saved baselines (baselines/<release>/)")
	drills := fs.String("drills", "", "comma-separated drills to run (default: every drill)")
	timeout := fs.Duration("timeout", 15*time.Minute, "limit of each run, environment included")
	generators := fs.Int("generators", 1, "k6 processes per run, each with its own execution segment")
	memcached := fs.Int("memcached", 3, "number of memcached servers")
	dbCPUs := fs.Float64("db-cpus", environments.DefaultDBCPUs, "the database container's CPU quota in cores (0: none)")
	release := fs.String("release", "", "release label of the system under test (default: `git describe`, or \"unversioned\")")
	seed := fs.Int64("seed", 1, "random seed of every run (repeats use the same seed: they measure run-to-run noise)")
	tol := fs.String("tolerance", "", "a significant change for the worse past this fraction (such as 10%) is a regression, for every metric (default: per metric, above the measured run-to-run noise: p99 latency 25%, error rate 100%, peak DB query rate 40%, recovery time 50%, hit ratio 5%)")
	k6 := fs.String("k6", "bin/k6", "k6 binary with firedrill's extensions (make k6)")
	scenarios := fs.String("scenarios", "scenarios", "folder of drill scripts")
	full := fs.Bool("full", false, "run the drills at their default lengths instead of their @nightly short forms (estimated at about twice as long)")
	verbose := fs.Bool("v", false, "show the harness's and k6's own output (always kept in each run's k6.log)")
	var sets stringList
	fs.Var(&sets, "set", "drill parameter `name=value` for every drill that declares it; each name must be one at least one drill declares (repeatable)")
	svcFlags := addServiceFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: firedrill nightly [flags]

Runs every drill in every profile it declares, --repeats times each (each run
in a fresh environment), each in its short form: the parameters of its
@nightly header line, under any --set (which goes to the drills that declare
it; --full runs the default lengths). Then
it writes into --out:
  runs/<drill>-<profile>-<time>/   each run's result.json, report.html, k6 files
  results/<drill>-<profile>-<n>.json  flat copies (what "baseline save" stores)
  report.html    every result in one report
  compare.html   the comparison against the baseline (and compare.txt)
  junit.xml      verdicts, and regressions when there is a baseline
  summary.txt    the summary printed on stdout
Exits non-zero when a run missed its declared verdict or a metric regressed
against the baseline. Without a baseline it says so and reports verdicts only.

Repeats: the comparison tests each metric with a one-sided Mann-Whitney U
test over the repeats of each side ("did it get worse?"), significant at
p <= 0.05. With 3 vs 3 runs the smallest possible p is 1/20 = 0.05: a
regression is called when every run got worse than every baseline run. The
default is therefore 3. Fewer repeats make the nightly shorter (runs = drills
x profiles x repeats) but then it can catch failed verdicts only, not
regressions; more make it more sensitive (4 vs 4: p down to 0.014).
Only the profiles that must hold are judged on their metrics, each against
its tolerance (see --tolerance); a profile that must break is judged on its
verdict, its metrics are shown. Metrics of runs made with different
parameters (a short form against a --full baseline) are not compared: save
baselines from the same form.

Flags:
`)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("nightly takes no arguments, got %q (use --drills a,b for a subset)", strings.Join(pos, " "))
	}
	switch {
	case *repeats < 1:
		return fmt.Errorf("--repeats must be at least 1, got %d", *repeats)
	case *generators < 1:
		return fmt.Errorf("--generators must be at least 1, got %d", *generators)
	case *timeout <= 0:
		return fmt.Errorf("--timeout must be positive, got %s", *timeout)
	case *memcached < 1:
		return fmt.Errorf("--memcached must be at least 1, got %d", *memcached)
	}
	copts := reports.CompareOptions{Tolerances: nightly.DefaultTolerances}
	if *tol != "" {
		t, err := parseFraction(*tol)
		if err != nil {
			return fmt.Errorf("nightly: --tolerance %w", err)
		}
		copts = reports.CompareOptions{Tolerance: t}
	}
	all, err := harness.LoadDrills(*scenarios)
	if err != nil {
		return err
	}
	selected := all
	if *drills != "" {
		selected = nil
		for _, name := range strings.Split(*drills, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			d, err := harness.FindDrill(*scenarios, name)
			if err != nil {
				return badArg(err)
			}
			selected = append(selected, d)
		}
	}
	svc, selected, err := svcFlags.nightlyService(fs, selected, *drills != "", *memcached, stderr)
	if err != nil {
		return badArg(err)
	}
	params, err := parseSets(sets)
	if err != nil {
		return err
	}
	if err := checkNightlySets(selected, params); err != nil {
		return badArg(err)
	}
	if _, err := os.Stat(*k6); err != nil {
		return fmt.Errorf("nightly: k6 binary %s: %w (build it with `make k6`)", *k6, err)
	}
	// Before the images (the service's too): without an engine every image
	// looks missing.
	if err := environments.CheckDocker(ctx); err != nil {
		return noDocker(err)
	}
	for _, d := range selected {
		for _, p := range d.Profiles {
			if err := d.CheckHost(p); err != nil {
				return fmt.Errorf("nightly: %w", err)
			}
		}
	}
	// svc is nil when no drill to run drives a service (nightlyService):
	// then neither its images nor its release label count.
	if svc != nil {
		ids, err := svc.CheckImages(ctx)
		if err != nil {
			return badArg(err)
		}
		if *release == "" {
			head := svc.Head()
			*release = harness.ReleaseLabel(head.Image, ids[head.Name])
		}
	}
	if *release == "" {
		*release = gitDescribe()
	}
	if *out == "" {
		*out = filepath.Join("out", "nightly-"+time.Now().UTC().Format("20060102-150405"))
	}
	if missing := environments.MissingImages(ctx, environments.MariaDBImage); len(missing) > 0 {
		fmt.Fprintf(stderr, "images: missing %s, building them\n", strings.Join(missing, ", "))
		if err := environments.BuildImages(ctx, environments.WithBuildProgress(stderr)); err != nil {
			return err
		}
	}
	base, why := nightly.ResolveBaseline(*baselines, *baseline)
	if base == "" {
		fmt.Fprintf(stderr, "nightly: no baseline: %s; reporting verdicts without a comparison\n", why)
	} else {
		fmt.Fprintf(stderr, "nightly: baseline %s\n", base)
	}
	var detail io.Writer = io.Discard
	if *verbose {
		detail = stderr
	}
	s, err := nightly.Run(ctx, nightly.Options{
		Drills: selected, Repeats: *repeats, OutDir: *out,
		Template: harness.RunOptions{
			K6: *k6, Memcached: *memcached, MySQLImage: environments.MariaDBImage, DBCPUs: quota(*dbCPUs),
			Release: *release, Seed: *seed, Params: params, Timeout: *timeout,
			Generators: *generators, Progress: detail, K6Output: detail, Service: svc,
		},
		Full:     *full,
		Baseline: base, NoBaseline: why,
		Compare:  copts,
		Progress: stderr,
	})
	if s != nil && s.Report != "" {
		fmt.Fprintln(stdout)
		nightly.WriteSummary(stdout, s)
	}
	if err != nil && s != nil {
		// The exit code of the worst run: could not decide (4), invalid
		// (3), else a missed verdict or a regression (1).
		var rs []*reports.Result
		code := exitMissed
		for _, r := range s.Runs {
			if r.Result != nil {
				rs = append(rs, r.Result)
			} else if r.Err != nil {
				code = exitError
			}
		}
		var ve *exitErr
		if errors.As(verdictErr(rs), &ve) {
			code = max(code, ve.code)
		}
		return &exitErr{code: code, msg: err.Error()}
	}
	return err
}

// checkNightlySets checks a nightly's --set: it goes to every drill that
// declares the name, so each name must be declared by one drill at least,
// and its value must be of the type of each that declares it.
func checkNightlySets(drills []harness.Drill, set map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(set)) {
		var takers []string
		for _, d := range drills {
			if _, ok := d.Param(k); !ok {
				continue
			}
			takers = append(takers, d.Name)
			if err := d.CheckValues(map[string]string{k: set[k]}); err != nil {
				return fmt.Errorf("--set: %w", err)
			}
		}
		if len(takers) == 0 {
			seen := map[string]bool{}
			for _, d := range drills {
				for _, p := range d.Params {
					seen[p.Name+" ("+p.Type+")"] = true
				}
			}
			return fmt.Errorf("--set: no drill of this nightly has a parameter %q; they take %s (see `firedrill list DRILL`)", k, strings.Join(slices.Sorted(maps.Keys(seen)), ", "))
		}
	}
	return nil
}

// baselineCmd saves and lists baselines:
//
//	firedrill baseline save --release vX.Y [--from DIR] [--baselines baselines]
//	firedrill baseline list [--baselines baselines]
func baselineCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = `Usage: firedrill baseline save --release vX.Y [--from NIGHTLY_OR_RUN_FOLDER] [--baselines baselines] [--force]
       firedrill baseline list [--baselines baselines]

save stores the results of a nightly (its results/ folder), of a folder of
result files, or of one run folder under BASELINES/<release>/, where a CI cache
or artefact store can keep them and "firedrill nightly --baseline vX.Y" or
"firedrill compare BASELINES/vX.Y -- ..." finds them, each labelled vX.Y
whatever release its run recorded. --from defaults to the newest
out/nightly-* folder; --from BASELINES/vX.Y --force relabels a baseline saved
by an older firedrill.
`
	if len(args) == 0 {
		fmt.Fprint(stderr, use)
		return errUsage
	}
	fs := flag.NewFlagSet("baseline "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	baselines := fs.String("baselines", "baselines", "folder of saved baselines")
	fs.Usage = func() { fmt.Fprint(fs.Output(), use+"\nFlags:\n"); fs.PrintDefaults() }
	switch args[0] {
	case "save":
		release := fs.String("release", "", "release label the results belong to, such as v1.4 (required)")
		from := fs.String("from", "", "nightly folder, folder of results or run folder (default: the newest out/nightly-*)")
		force := fs.Bool("force", false, "replace an existing baseline of that release")
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return usageErr(err)
		}
		if len(pos) > 0 {
			return fmt.Errorf("baseline save takes no arguments, got %q (use --from)", strings.Join(pos, " "))
		}
		if *release == "" {
			fs.Usage()
			return errors.New("baseline save: --release is required, such as --release v1.4")
		}
		if *from == "" {
			m, _ := filepath.Glob(filepath.Join("out", "nightly-*"))
			if len(m) == 0 {
				return errors.New("baseline save: no out/nightly-* folder: run `firedrill nightly` first or pass --from")
			}
			*from = m[len(m)-1] // names sort by time
		}
		dir, n, err := nightly.SaveBaseline(*baselines, *release, *from, *force)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "baseline: %d result(s) from %s saved as %s\n", n, *from, dir)
		return nil
	case "list":
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return usageErr(err)
		}
		if len(pos) > 0 {
			return fmt.Errorf("baseline list takes no arguments, got %q", strings.Join(pos, " "))
		}
		bs, err := nightly.ListBaselines(*baselines)
		if err != nil {
			return err
		}
		if len(bs) == 0 {
			fmt.Fprintf(stdout, "no baselines under %s (firedrill baseline save --release vX.Y)\n", *baselines)
			return nil
		}
		for _, b := range bs {
			if b.Err != nil {
				fmt.Fprintf(stdout, "%-16s %s: unreadable: %v\n", b.Release, b.Dir, b.Err)
				continue
			}
			fmt.Fprintf(stdout, "%-16s %3d result(s)  %s  %s\n", b.Release, b.Results, b.Newest.Format("2006-01-02 15:04"), strings.Join(b.Keys, " "))
		}
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, use)
		return nil
	default:
		fmt.Fprint(stderr, use)
		return fmt.Errorf("baseline: unknown subcommand %q: save or list", args[0])
	}
}
