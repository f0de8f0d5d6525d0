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

	"github.com/firedrill-dev/firedrill/reports"
)

// reportCmd renders result files into one HTML report:
//
//	firedrill report RESULT.json... -o report.html [--junit verdicts.xml]
func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "report.html", "write the HTML report to `FILE`")
	junit := fs.String("junit", "", "also write the verdicts as JUnit XML to `FILE`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: firedrill report RESULT.json|DIR... [-o report.html] [--junit FILE]

Renders any set of results (a directory means every *.json in it) into one
self-contained HTML report: verdicts, fault-annotated charts, phases, metadata.

Flags:
`)
		fs.PrintDefaults()
	}
	paths, err := parseInterspersed(fs, args) // main.go: flags may follow the files
	if err != nil {
		return usageErr(err)
	}
	if len(paths) == 0 {
		return errors.New("report: no result files given: firedrill report RESULT.json... -o report.html (-h for flags)")
	}
	results, err := readResults(ctx, paths)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var buf bytes.Buffer
	if err := reports.RenderHTML(&buf, results); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := reports.WriteFileAtomic(*out, buf.Bytes()); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(stdout, "report: %d result(s) -> %s\n", len(results), *out)
	if *junit != "" {
		buf.Reset()
		if err := reports.WriteJUnit(&buf, results, nil); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if err := reports.WriteFileAtomic(*junit, buf.Bytes()); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		fmt.Fprintf(stdout, "report: junit -> %s\n", *junit)
	}
	return nil
}

// readResults reads every result file; a directory stands for the *.json
// files in it. The first bad file stops it, with an error naming the file.
func readResults(ctx context.Context, paths []string) ([]*reports.Result, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read result: %w", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.json"))
		if err != nil {
			return nil, fmt.Errorf("read results in %s: %w", p, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("read results in %s: no *.json files there", p)
		}
		sort.Strings(matches)
		files = append(files, matches...)
	}
	results := make([]*reports.Result, 0, len(files))
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := reports.ReadResult(f)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}
