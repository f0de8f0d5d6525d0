package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/firedrill-dev/firedrill/harness"
	"github.com/firedrill-dev/firedrill/reports"
)

// mergeCmd builds one result from the k6 files of several generators that
// ran a drill together (local --generators runs, or the runner pods of a
// k6-operator TestRun):
//
//	firedrill merge DRILL --profile P --out DIR FOLDER...
func mergeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "", "the profile the generators ran (default: the drill's only profile)")
	out := fs.String("out", "", "folder for the merged result.json and report.html (required)")
	release := fs.String("release", "", "release label of the system under test (default: `git describe`, or \"unversioned\")")
	scenarios := fs.String("scenarios", "scenarios", "folder of drill scripts")
	k6 := fs.String("k6", "bin/k6", "k6 binary with firedrill's extensions (make k6): it reads the drill's checks")
	seed := fs.Int64("seed", 1, "the seed the generators ran with")
	var sets stringList
	fs.Var(&sets, "set", "drill parameter `name=value` the generators ran with, one the drill declares (repeatable): the checks are read under them")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: firedrill merge DRILL [--profile P] --out DIR FOLDER...

Merges what several k6 generators of one run wrote into one result.json and
report.html: HDR histograms merged and counters summed per second (exact, not
averaged), fault events kept, and the drill's checks judged on the merge (k6's
own thresholds too, on all samples together). Each generator is a group of
files in the FOLDERs, matched by name:
  <prefix>k6-samples<suffix>.json[.gz]   k6 --out json (required)
  <prefix>k6-summary<suffix>.json        k6 --summary-export (required for thresholds)
  <prefix>histograms<suffix>.ndjson      FIREDRILL_HDR_OUT (optional)
such as k6-samples-0.json.gz (firedrill run --generators) or
runner-1-k6-samples.json.gz (firedrill k8s manifests). A servers.ndjson in
a FOLDER (the servers' own counters, which firedrill run samples) is read
too: its series, phase statistics and coverage precondition join the result.

Flags:
`)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) < 2 {
		fs.Usage()
		return errors.New("merge needs a drill and at least one folder of generator files")
	}
	if *out == "" {
		return errors.New("merge: --out DIR is required")
	}
	d, err := harness.FindDrill(*scenarios, pos[0])
	if err != nil {
		return badArg(err)
	}
	if *profile == "" {
		if len(d.Profiles) != 1 {
			return badArg(fmt.Errorf("merge: drill %s has profiles %s: pass --profile", d.Name, strings.Join(d.Profiles, ", ")))
		}
		*profile = d.Profiles[0]
	} else if _, ok := d.Expect[*profile]; !ok {
		return badArg(fmt.Errorf("merge: drill %s has no profile %q: choose %s", d.Name, *profile, strings.Join(d.Profiles, ", ")))
	}
	params, err := drillSets(d, sets)
	if err != nil {
		return err
	}
	files, err := generatorFiles(pos[1:])
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	servers, err := serversFile(pos[1:])
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if *release == "" {
		*release = gitDescribe()
	}
	vars, err := harness.ScriptVars(d, *profile, *seed, len(files), params)
	if err != nil {
		return badArg(fmt.Errorf("merge: %w", err))
	}
	spec, err := harness.InspectSpec(ctx, *k6, d, vars)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	fmt.Fprintf(stderr, "merge: %d generator(s)\n", len(files))
	res, err := harness.MergeOutputs(d, *profile, *release, files, servers, spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if err := reports.WriteResult(filepath.Join(*out, "result.json"), res); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	var buf bytes.Buffer
	if err := reports.RenderHTML(&buf, []*reports.Result{res}); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if err := reports.WriteFileAtomic(filepath.Join(*out, "report.html"), buf.Bytes()); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n%s\n", filepath.Join(*out, "result.json"), filepath.Join(*out, "report.html"))
	if !res.Verdict.Pass {
		return verdictErr([]*reports.Result{res})
	}
	return nil
}

// generatorFiles groups the k6 files in folders by generator.
func generatorFiles(folders []string) ([]harness.GeneratorFiles, error) {
	groups := map[string]*harness.GeneratorFiles{}
	get := func(k string) *harness.GeneratorFiles {
		if groups[k] == nil {
			groups[k] = &harness.GeneratorFiles{}
		}
		return groups[k]
	}
	for _, dir := range folders {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			name, p := e.Name(), filepath.Join(dir, e.Name())
			key := func(token string) string {
				base := strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), filepath.Ext(strings.TrimSuffix(name, ".gz")))
				return dir + "\x00" + strings.Replace(base, token, "", 1)
			}
			switch {
			case strings.Contains(name, "k6-samples") && (strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".json.gz")):
				get(key("k6-samples")).Samples = p
			case strings.Contains(name, "k6-summary") && strings.HasSuffix(name, ".json"):
				get(key("k6-summary")).Summary = p
			case strings.Contains(name, "histograms") && strings.HasSuffix(name, ".ndjson"):
				get(key("histograms")).HDR = p
			}
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []harness.GeneratorFiles
	for _, k := range keys {
		g := groups[k]
		name := strings.ReplaceAll(k, "\x00", "/")
		switch {
		case g.Samples == "":
			return nil, fmt.Errorf("generator %s: no k6-samples file", name)
		case g.Summary == "":
			return nil, fmt.Errorf("generator %s: no k6-summary file (k6 --summary-export)", name)
		}
		out = append(out, *g)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no k6-samples files in %s", strings.Join(folders, ", "))
	}
	return out, nil
}

// serversFile is the one sampler file (servers.ndjson) in folders, "" when
// there is none: a run samples its servers once, whatever its generators.
func serversFile(folders []string) (string, error) {
	var found []string
	for _, dir := range folders {
		p := filepath.Join(dir, harness.ServersFile)
		if _, err := os.Stat(p); err == nil {
			found = append(found, p)
		}
	}
	if len(found) > 1 {
		return "", fmt.Errorf("%d %s files (%s): one run has one", len(found), harness.ServersFile, strings.Join(found, ", "))
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0], nil
}
