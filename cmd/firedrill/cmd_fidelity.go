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

	"github.com/firedrill-dev/firedrill/reports"
)

// fidelityCmd writes the fidelity table of a set of results: each check
// that declares the incident's own figure, beside the drill's.
//
//	firedrill fidelity RESULT.json|DIR... [-o FILE] [--readme README.md]
func fidelityCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fidelity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "also write the table to `FILE` (Markdown)")
	readme := fs.String("readme", "", "rewrite the table between the fidelity markers of `FILE` (README.md)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: firedrill fidelity RESULT.json|DIR... [-o FILE] [--readme README.md]

Prints, as a Markdown table, every check of the given results that declares
the incident's own figure (a check's "figure"), beside what the drill
measured: the metric in its phase and, for a relative bound, as a multiple
of the reference. A directory means every *.json in it, or in its results/
folder when it is a nightly's output. make fidelity runs every drill once at
its default length (firedrill nightly --full --repeats 1) and then this,
with --readme README.md, which replaces the text between the lines
%s and %s.

Flags:
`, reports.FidelityBegin, reports.FidelityEnd)
		fs.PrintDefaults()
	}
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(paths) == 0 {
		return errors.New("fidelity: no results given: firedrill fidelity out/fidelity (a nightly's folder) or RESULT.json... (-h for flags)")
	}
	for i, p := range paths {
		if st, err := os.Stat(filepath.Join(p, "results")); err == nil && st.IsDir() {
			paths[i] = filepath.Join(p, "results")
		}
	}
	results, err := readResults(ctx, paths)
	if err != nil {
		return fmt.Errorf("fidelity: %w", err)
	}
	rows := reports.Fidelity(results)
	if len(rows) == 0 {
		return fmt.Errorf("fidelity: none of the %d result(s) has a check with an incident figure: they come from drills that declare none, or from a firedrill older than the figures", len(results))
	}
	var buf bytes.Buffer
	if err := reports.WriteFidelity(&buf, rows); err != nil {
		return fmt.Errorf("fidelity: %w", err)
	}
	if *readme != "" {
		doc, err := os.ReadFile(*readme)
		if err != nil {
			return fmt.Errorf("fidelity: --readme: %w", err)
		}
		next, err := reports.ReplaceFidelity(string(doc), buf.String())
		if err != nil {
			return fmt.Errorf("fidelity: --readme %s: %w", *readme, err)
		}
		if err := reports.WriteFileAtomic(*readme, []byte(next)); err != nil {
			return fmt.Errorf("fidelity: %w", err)
		}
	}
	if *out != "" {
		if err := reports.WriteFileAtomic(*out, buf.Bytes()); err != nil {
			return fmt.Errorf("fidelity: %w", err)
		}
	}
	_, err = stdout.Write(buf.Bytes())
	return err
}
