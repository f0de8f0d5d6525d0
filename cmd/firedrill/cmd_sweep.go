package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/harness"
	"github.com/firedrill-dev/firedrill/sweep"
)

// sweepCmd runs one drill over a grid of parameter values and maps where
// the system recovers:
//
//	firedrill sweep DRILL --vary name=v1,v2,... [--vary ...] [--profile P] [--repeats R] [--out DIR]
func sweepCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "folder of the sweep (default out/sweep-DRILL); the same folder resumes an interrupted sweep")
	profile := fs.String("profile", "all", "profile to sweep, or all (every profile the drill declares)")
	repeats := fs.Int("repeats", 1, "runs of each cell")
	short := fs.Bool("short", false, "run each cell in the drill's @nightly short form (the --vary and --set values over it)")
	timeout := fs.Duration("timeout", 15*time.Minute, "limit of each run, environment included")
	memcached := fs.Int("memcached", 3, "number of memcached servers")
	dbCPUs := fs.Float64("db-cpus", environments.DefaultDBCPUs, "the database container's CPU quota in cores (0: none)")
	seed := fs.Int64("seed", 1, "random seed of every run")
	k6 := fs.String("k6", "bin/k6", "k6 binary with firedrill's extensions (make k6)")
	scenarios := fs.String("scenarios", "scenarios", "folder of drill scripts")
	verbose := fs.Bool("v", false, "show the harness's and k6's own output (always kept in each run's k6.log)")
	var varies, sets stringList
	fs.Var(&varies, "vary", "parameter `name=v1,v2,...` to vary (repeatable: the grid is every combination, the first --vary outermost)")
	fs.Var(&sets, "set", "drill parameter `name=value` fixed for every cell (repeatable)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: firedrill sweep DRILL --vary name=v1,v2,... [--vary ...] [--profile P] [--repeats R] [--out DIR]

Runs DRILL once per cell of the grid of --vary values (every combination),
in each profile, --repeats times, each run in a fresh environment, and
writes into --out:
  sweep.json   the grid and every cell: verdict, recovery, peak DB rate, load
  sweep.txt    the map as text tables (rows: the first --vary; columns: the second)
  sweep.html   the map: cells coloured by outcome (recovered, recovered
               slowly, stayed down), each linked to its run's report
  runs/        each run's folder
A cell's load is the offered operations/s before the trigger as a share of
the database's capacity, measured once, by the first run. An interrupted
sweep resumes: the same command runs only the cells without a result. The
map is the product: cells that miss their profile's verdict do not fail
the sweep; cells that gave no result do (exit 4).

Flags:
`)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return badArg(fmt.Errorf("sweep takes exactly one drill, got %d arguments (see `firedrill list`)", len(pos)))
	}
	switch {
	case *repeats < 1:
		return badArg(fmt.Errorf("--repeats must be at least 1, got %d", *repeats))
	case *timeout <= 0:
		return badArg(fmt.Errorf("--timeout must be positive, got %s", *timeout))
	case *memcached < 1:
		return badArg(fmt.Errorf("--memcached must be at least 1, got %d", *memcached))
	}
	d, err := harness.FindDrill(*scenarios, pos[0])
	if err != nil {
		return badArg(err)
	}
	if d.UsesApp() {
		return badArg(fmt.Errorf("sweep: drill %s drives a service under test, which sweep does not start: sweep an engine drill (`firedrill list`)", d.Name))
	}
	var axes []sweep.Axis
	for _, v := range varies {
		a, err := sweep.ParseVary(v)
		if err != nil {
			return badArg(fmt.Errorf("sweep: %w", err))
		}
		axes = append(axes, a)
	}
	params, err := parseSets(sets)
	if err != nil {
		return badArg(err)
	}
	var profiles []string
	if *profile != "all" {
		profiles = []string{*profile}
	}
	if *out == "" {
		*out = filepath.Join("out", "sweep-"+d.Name)
	}
	var detail io.Writer = io.Discard
	if *verbose {
		detail = stderr
	}
	o := sweep.Options{
		Drill: d, Axes: axes, Profiles: profiles, Repeats: *repeats, Short: *short, Set: params, OutDir: *out,
		Template: harness.RunOptions{
			K6: *k6, Memcached: *memcached, MySQLImage: environments.MariaDBImage, DBCPUs: quota(*dbCPUs),
			Release: gitDescribe(), Seed: *seed, Timeout: *timeout, Progress: detail, K6Output: detail,
		},
		Progress: stderr,
	}
	if err := o.Validate(); err != nil {
		return badArg(err)
	}
	if _, err := os.Stat(*k6); err != nil {
		return fmt.Errorf("sweep: k6 binary %s: %w (build it with `make k6`)", *k6, err)
	}
	if err := environments.CheckDocker(ctx); err != nil {
		return noDocker(err)
	}
	for _, p := range o.Profiles {
		if err := d.CheckHost(p); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
	}
	if missing := environments.MissingImages(ctx, environments.MariaDBImage); len(missing) > 0 {
		fmt.Fprintf(stderr, "images: missing %s, building them\n", strings.Join(missing, ", "))
		if err := environments.BuildImages(ctx, environments.WithBuildProgress(stderr)); err != nil {
			return err
		}
	}
	s, err := sweep.Run(ctx, o)
	if s != nil {
		sweep.WriteText(stdout, s)
		fmt.Fprintf(stdout, "\nsweep: map -> %s\n", filepath.Join(*out, sweep.HTMLFile))
	}
	if err != nil {
		return &exitErr{code: exitError, msg: err.Error()}
	}
	return nil
}
