package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/harness"
	"github.com/firedrill-dev/firedrill/reports"
)

// parseSets reads repeated --set name=value flags.
func parseSets(sets []string) (map[string]string, error) {
	params := map[string]string{}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ContainsAny(k, " =") {
			return nil, badArg(fmt.Errorf("bad --set %q: want name=value", s))
		}
		params[k] = v
	}
	return params, nil
}

// drillSets reads --set for one drill: every name one it declares, every
// value of its type.
func drillSets(d harness.Drill, sets []string) (map[string]string, error) {
	params, err := parseSets(sets)
	if err != nil {
		return nil, err
	}
	if err := d.CheckValues(params); err != nil {
		return nil, badArg(fmt.Errorf("--set: %w", err))
	}
	return params, nil
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "all", "profile to run: one the drill declares, or all (each in a fresh environment, one after the other)")
	out := fs.String("out", "out", "results folder: each run writes OUT/<drill>-<profile>-<time>/result.json and report.html")
	memcached := fs.Int("memcached", 3, "number of memcached servers")
	dbCPUs := fs.Float64("db-cpus", environments.DefaultDBCPUs, "the database container's CPU quota in cores (0: none); drills calibrate their load against it")
	mysqlImage := fs.String("mysql-image", environments.MariaDBImage, "database image; an official mysql:8.x works where a registry is reachable")
	release := fs.String("release", "", "release label of the system under test (default: `git describe` of the working tree, or \"unversioned\")")
	seed := fs.Int64("seed", 1, "random seed of the drill, so a run can be repeated")
	timeout := fs.Duration("timeout", 30*time.Minute, "stop the run (and tear down) after this long")
	k6 := fs.String("k6", "bin/k6", "k6 binary with firedrill's extensions (make k6)")
	scenarios := fs.String("scenarios", "scenarios", "folder of drill scripts")
	generators := fs.Int("generators", 1, "k6 processes driving the load, each with its own execution segment; results are merged and thresholds judged on the merge")
	short := fs.Bool("short", false, "run the drill's short form, the parameters of its @nightly line (what the nightly and make test run); --set wins")
	quiet := fs.Bool("quiet", false, "do not show k6's own output (it is kept in k6.log)")
	var sets stringList
	fs.Var(&sets, "set", "drill parameter `name=value`, one the drill's header declares (see `firedrill list DRILL`), of its type (repeatable)")
	svcFlags := addServiceFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: firedrill run DRILL [flags]\n\nStarts an environment, runs scenarios/DRILL.js with k6 against it while reading the\nservers' own counters once a second (servers.ndjson), writes result.json and\nreport.html, and removes the environment (also on error, Ctrl-C and timeout).\nExits 0 only when every profile reached the verdict the drill declares.\n\nBefore it builds or starts anything it checks the arguments, each --set against\nthe drill's @param declarations, and that the Docker engine answers (DOCKER_HOST).\nThe script gets every parameter resolved for the run: declared default, the\nprofile's default, the @nightly short form with --short, then --set.\n\nThe app-* drills drive a service under test: --app IMAGE (a local image; twice,\nbase=IMAGE and head=IMAGE, for a rolling deploy), or firedrill.yaml (--config).\nIt joins the run's network and reaches every server through its Toxiproxy proxy\n({{mysql.dsn}}, {{memcached.servers}} in --app-env); its logs are kept as\napp-NAME.log. Without per-profile settings in the file, the drill judges its\nsteady state in the profile that must hold. Other drills take no --app.\n\nFlags:")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("run needs exactly one drill name, got %d (see `firedrill list`)", len(pos))
	}
	drill, err := harness.FindDrill(*scenarios, pos[0])
	if err != nil {
		return badArg(err)
	}
	params, err := drillSets(drill, sets)
	if err != nil {
		return err
	}
	if *short && drill.Nightly == nil {
		return badArg(fmt.Errorf("--short: drill %s has no @nightly line, so no short form; run it without --short", drill.Name))
	}
	params = drill.Overrides(params, *short)
	svc, err := svcFlags.service(fs, drill, *memcached)
	if err != nil {
		return badArg(err)
	}
	profiles := drill.Profiles
	if svc != nil && !svc.Configurable() {
		// One configuration: the drill's profiles that must hold judge its
		// steady state; the signature checks are shown for information.
		profiles = nil
		for _, p := range drill.Profiles {
			if drill.Expect[p] == reports.Held {
				profiles = append(profiles, p)
			}
		}
		if *profile == "all" {
			fmt.Fprintf(stderr, "run: the service has one configuration (no profiles in its %s): judging the steady state in profile %s; the incident's signature is shown for information\n",
				harness.ServiceFile, strings.Join(profiles, ", "))
		}
	}
	if *profile != "all" {
		if _, ok := drill.Expect[*profile]; !ok {
			return badArg(fmt.Errorf("drill %s has no profile %q: choose %s or all", drill.Name, *profile, strings.Join(drill.Profiles, ", ")))
		}
		profiles = []string{*profile}
	}
	switch {
	case *memcached < 1:
		return badArg(fmt.Errorf("--memcached must be at least 1, got %d", *memcached))
	case *dbCPUs < 0:
		return badArg(fmt.Errorf("--db-cpus must be 0 (no quota) or more, got %v", *dbCPUs))
	case *generators < 1:
		return badArg(fmt.Errorf("--generators must be at least 1, got %d", *generators))
	case *timeout <= 0:
		return badArg(fmt.Errorf("--timeout must be positive, got %s", *timeout))
	}
	if _, err := os.Stat(*k6); err != nil {
		return fmt.Errorf("k6 binary %s: %w (build it with `make k6`)", *k6, err)
	}
	// Before the images: without an engine every image looks missing, and
	// the build would start (a base bootstrap takes minutes) only to fail.
	if err := environments.CheckDocker(ctx); err != nil {
		return noDocker(err)
	}
	for _, p := range profiles {
		if err := drill.CheckHost(p); err != nil {
			return err
		}
	}
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
	if *mysqlImage == environments.MariaDBImage {
		if missing := environments.MissingImages(ctx, *mysqlImage); len(missing) > 0 {
			fmt.Fprintf(stderr, "images: missing %s, building them\n", strings.Join(missing, ", "))
			if err := environments.BuildImages(ctx, environments.WithBuildProgress(stderr)); err != nil {
				return err
			}
		}
	}
	var k6out io.Writer = stderr
	if *quiet {
		k6out = io.Discard
	}
	var results []*reports.Result
	var failed []string
	for _, p := range profiles {
		if ctx.Err() != nil {
			break
		}
		res, dir, err := harness.Run(ctx, harness.RunOptions{
			Drill: drill, Profile: p, OutDir: *out, K6: *k6,
			Memcached: *memcached, MySQLImage: *mysqlImage, DBCPUs: quota(*dbCPUs),
			Release: *release, Seed: *seed, Params: params, Timeout: *timeout,
			Generators: *generators, Progress: stderr, K6Output: k6out, Service: svc,
		})
		if dir != "" {
			fmt.Fprintf(stdout, "%s\n%s\n", filepath.Join(dir, "result.json"), filepath.Join(dir, "report.html"))
		}
		switch {
		case err != nil && res == nil:
			return err
		case err == nil:
			_ = reports.WriteChecksText(stderr, res)
		}
		if res != nil {
			results = append(results, res)
		}
	}
	if ctx.Err() != nil {
		failed = append(failed, "interrupted")
	}
	err = verdictErr(results)
	if len(failed) > 0 {
		msg := strings.Join(failed, "\n  ")
		if err != nil {
			msg = err.Error() + "\n  " + msg
		}
		return &exitErr{code: exitError, msg: msg}
	}
	return err
}

// verdictErr is nil when every result reached its declared verdict, and
// otherwise an error listing the ones that did not, with the exit code of
// the worst: a run that could not decide (4), an invalid run (3), a missed
// verdict (1).
func verdictErr(rs []*reports.Result) error {
	var lines []string
	code := 0
	for _, r := range rs {
		if r.Verdict.Pass {
			continue
		}
		c, what := exitMissed, fmt.Sprintf("expected %s, reached %s", r.Verdict.Expected, r.Verdict.Reached)
		switch r.Verdict.Reached {
		case reports.Error:
			c, what = exitError, "could not decide"
		case reports.Invalid:
			c, what = exitInvalid, "INVALID (a precondition failed; the run proves nothing)"
		}
		code = max(code, c)
		if r.Verdict.Reason != "" {
			what += ": " + r.Verdict.Reason
		}
		lines = append(lines, fmt.Sprintf("%s %s: %s", r.Drill, r.Profile, what))
	}
	if code == 0 {
		return nil
	}
	return &exitErr{code: code, msg: strings.Join(lines, "\n  ")}
}

// gitDescribe labels the release under test by the working tree's git
// describe, or "unversioned" outside a repository.
func gitDescribe() string { return releaseLabel("") }

// releaseLabel is `git describe --tags --always` of the repository at dir
// ("" for the current directory), with -dirty when a tracked file changed
// outside bench/, or "unversioned" outside a repository. `make bench`
// rewrites the figures under bench/, which change nothing a drill runs:
// they made every release measured after a benchmark "-dirty".
// scripts/version.sh (the Makefile's VERSION) follows the same rule.
func releaseLabel(dir string) string {
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	label, err := git("describe", "--tags", "--always")
	if err != nil || label == "" {
		return "unversioned"
	}
	// Pathspecs from the top, so a run from a subfolder judges the whole
	// tree; untracked files do not count, as with describe --dirty. A
	// status that cannot be read says dirty: a clean label is a claim.
	changed, err := git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)bench")
	if err != nil || changed != "" {
		label += "-dirty"
	}
	return label
}

// version is the harness version: the -X value if set, else the module
// version the binary was built from.
func version() string {
	if harness.Version != "dev" {
		return harness.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// quota is --db-cpus as RunOptions.DBCPUs takes it: 0 on the command line
// is no quota.
func quota(cores float64) float64 {
	if cores == 0 {
		return -1
	}
	return cores
}

// serviceFlags are the flags that declare the service under test.
type serviceFlags struct {
	apps, env                     stringList
	port                          int
	health, metrics, memory, seed string
	config                        string
	cpus                          float64
	startup                       time.Duration
}

func addServiceFlags(fs *flag.FlagSet) *serviceFlags {
	f := &serviceFlags{}
	fs.Var(&f.apps, "app", "the service under test: a local `IMAGE` (never pulled), for a drill that drives one (app-*); twice, base=IMAGE and head=IMAGE, for a rolling deploy")
	fs.IntVar(&f.port, "app-port", 0, "the service's HTTP port inside its container (default 8080)")
	fs.StringVar(&f.health, "app-health", "", "the service's health check path, GET answering 2xx when ready (default /healthz)")
	fs.StringVar(&f.metrics, "app-metrics", "", "the service's Prometheus metrics path (e.g. /metrics), sampled once a second as app_NAME")
	fs.Var(&f.env, "app-env", "the service's environment `NAME=VALUE` (repeatable); a value may name an endpoint as the service sees it through Toxiproxy: {{mysql.dsn}}, {{mysql.addr}}, {{memcached.servers}}, {{memcached.0}}, ...")
	fs.Float64Var(&f.cpus, "app-cpus", 0, "CPU limit of the service's container (default none)")
	fs.StringVar(&f.memory, "app-memory", "", "memory limit of the service's container, e.g. 256m (default none)")
	fs.StringVar(&f.seed, "seed-sql", "", "SQL `FILE` run on the database (as root) before the service starts: its schema and data")
	fs.DurationVar(&f.startup, "app-startup", 0, "how long the service may take to pass its health check (default 1m)")
	fs.StringVar(&f.config, "config", "", "the service under test's `FILE` (default "+harness.ServiceFile+" when it exists); drills that drive no service ignore it")
	return f
}

// service is the service under test for drill d: the file (--config, or
// firedrill.yaml in the working directory) with the flags over it; nil for
// a drill that drives none. Every error is a bad argument, found before
// anything starts.
func (f *serviceFlags) service(fs *flag.FlagSet, d harness.Drill, memcached int) (*harness.Service, error) {
	explicit := false
	fs.Visit(func(fl *flag.Flag) {
		if strings.HasPrefix(fl.Name, "app") || fl.Name == "seed-sql" {
			explicit = true
		}
	})
	if !d.UsesApp() {
		if explicit {
			return nil, fmt.Errorf("drill %s drives firedrill's own traffic engine and takes no service under test: drop --app (the drills that drive one are app-*: `firedrill list`)", d.Name)
		}
		return nil, nil
	}
	var file *harness.Service
	path := f.config
	if path == "" {
		if _, err := os.Stat(harness.ServiceFile); err == nil {
			path = harness.ServiceFile
		}
	}
	if path != "" {
		var err error
		if file, err = harness.LoadServiceFile(path); err != nil {
			return nil, err
		}
	}
	svc, err := harness.ServiceFlags{Apps: f.apps, Port: f.port, Health: f.health, Metrics: f.metrics, Env: f.env,
		CPUs: f.cpus, Memory: f.memory, SeedSQL: f.seed, Startup: f.startup, Explicit: explicit}.Apply(file)
	if err != nil {
		return nil, err
	}
	if svc == nil || len(svc.Releases) == 0 {
		return nil, fmt.Errorf("drill %s drives a service under test, and none is given: pass --app IMAGE (see `firedrill run --help`), or declare it in %s (--config FILE)", d.Name, harness.ServiceFile)
	}
	if err := svc.Validate(memcached); err != nil {
		return nil, err
	}
	switch {
	case d.App == 2 && len(svc.Releases) != 2:
		return nil, fmt.Errorf("drill %s is a rolling deploy from one release to another: give both, --app base=IMAGE --app head=IMAGE", d.Name)
	case d.App == 1 && len(svc.Releases) != 1:
		return nil, fmt.Errorf("drill %s drives one release: give --app IMAGE once", d.Name)
	}
	if err := svc.CheckProfiles(d); err != nil {
		return nil, err
	}
	return svc, nil
}

// nightlyService is the service under test of a nightly (the file, or the
// flags over it) and the drills to run: the app-* drills need a service,
// and one that cannot run against it (a rolling deploy with one release)
// is left out with a line saying so; named explicitly (--drills), that is
// an error instead. Like run, the file (firedrill.yaml, --config) applies
// only when a drill to run drives a service: otherwise it is not read and
// the service is nil (no image check, the release label as without one),
// and --app (or another service flag) is an error.
func (f *serviceFlags) nightlyService(fs *flag.FlagSet, drills []harness.Drill, explicit bool, memcached int, w io.Writer) (*harness.Service, []harness.Drill, error) {
	given := false
	fs.Visit(func(fl *flag.Flag) {
		if strings.HasPrefix(fl.Name, "app") || fl.Name == "seed-sql" {
			given = true
		}
	})
	noneDrives := func() error {
		if given {
			return errors.New("none of the drills to run drives a service under test: drop --app (the drills that drive one are app-*: `firedrill list`)")
		}
		return nil
	}
	if !slices.ContainsFunc(drills, harness.Drill.UsesApp) {
		return nil, drills, noneDrives()
	}
	var file *harness.Service
	path := f.config
	if path == "" {
		if _, err := os.Stat(harness.ServiceFile); err == nil {
			path = harness.ServiceFile
		}
	}
	if path != "" {
		var err error
		if file, err = harness.LoadServiceFile(path); err != nil {
			return nil, nil, err
		}
	}
	svc, err := harness.ServiceFlags{Apps: f.apps, Port: f.port, Health: f.health, Metrics: f.metrics, Env: f.env,
		CPUs: f.cpus, Memory: f.memory, SeedSQL: f.seed, Startup: f.startup, Explicit: given}.Apply(file)
	if err != nil {
		return nil, nil, err
	}
	if svc != nil {
		if err := svc.Validate(memcached); err != nil {
			return nil, nil, err
		}
	}
	var out []harness.Drill
	for _, d := range drills {
		if !d.UsesApp() {
			out = append(out, d)
			continue
		}
		why := ""
		if svc == nil {
			why = "no service under test (--app IMAGE or " + harness.ServiceFile + ")"
		} else if _, err := svc.ForDrill(d); err != nil {
			why = err.Error()
		} else if err := svc.CheckProfiles(d); err != nil {
			why = err.Error()
		}
		if why == "" {
			out = append(out, d)
			continue
		}
		if explicit {
			return nil, nil, fmt.Errorf("drill %s: %s", d.Name, why)
		}
		fmt.Fprintf(w, "nightly: leaving out %s: %s\n", d.Name, why)
	}
	if !slices.ContainsFunc(out, harness.Drill.UsesApp) {
		// Every drill that drives a service was left out: the nightly runs
		// as without one.
		return nil, out, noneDrives()
	}
	return svc, out, nil
}
