package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/firedrill-dev/firedrill/reports"
)

// errRegression is returned by compare when a metric regressed or a verdict
// went from holding to failing; the comparison was still written.
var errRegression = errors.New("regression found")

// compareCmd compares the results of two releases:
//
//	firedrill compare BASE... -- HEAD... -o compare.html [--junit FILE] [--tolerance 5%] [--alpha 0.05]
func compareCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "compare.html", "write the HTML comparison to `FILE`")
	junit := fs.String("junit", "", "also write verdicts and regressions as JUnit XML to `FILE`")
	tol := fs.String("tolerance", "5%", "a significant change for the worse past this `fraction` (5% or 0.05) is a regression, one for the better an improvement; within it, neither")
	alpha := fs.Float64("alpha", 0.05, "significance level of the Mann-Whitney U test")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: firedrill compare BASE.json|DIR... -- HEAD.json|DIR... [-o compare.html] [--junit FILE] [--tolerance 5%]
       firedrill compare BASE.json HEAD.json

Compares each drill and profile's verdicts, checks and key metrics (p99
latency, error rate, peak database query rate, recovery time, hit ratio).
Several runs per side (repeats) let it tell signal from noise: 3 or more a
side are needed for a significant result at alpha 0.05. A metric is a
regression or an improvement only when significant and past the tolerance;
the HTML plots each run against the tolerance band. Exits non-zero on a
regression.

Flags:
`)
		fs.PrintDefaults()
	}
	// Split before parsing: the flag package would swallow "--" itself.
	left, right, split := args, []string(nil), false
	if i := slices.Index(args, "--"); i >= 0 {
		left, right, split = args[:i], args[i+1:], true
	}
	base, err := parseInterspersed(fs, left)
	if err != nil {
		return usageErr(err)
	}
	head, err := parseInterspersed(fs, right)
	if err != nil {
		return usageErr(err)
	}
	if !split && len(base) == 2 { // the short form: one base, one head
		base, head, split = base[:1], base[1:], true
	}
	switch {
	case !split && len(base) != 0:
		return errors.New("compare: separate base and head results with --, as in: firedrill compare BASE.json -- HEAD.json")
	case len(base) == 0 || len(head) == 0:
		return errors.New("compare: need base and head results, as in: firedrill compare BASE.json -- HEAD.json (-h for the flags)")
	}
	tolerance, err := parseFraction(*tol)
	if err != nil {
		return fmt.Errorf("compare: --tolerance %w", err)
	}
	if *alpha <= 0 || *alpha >= 1 {
		return fmt.Errorf("compare: --alpha %v must be between 0 and 1, such as 0.05", *alpha)
	}
	baseRs, err := readResults(ctx, base)
	if err != nil {
		return fmt.Errorf("compare: base: %w", err)
	}
	headRs, err := readResults(ctx, head)
	if err != nil {
		return fmt.Errorf("compare: head: %w", err)
	}
	c, err := reports.Compare(baseRs, headRs, reports.CompareOptions{Alpha: *alpha, Tolerance: tolerance})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := reports.RenderCompareHTML(&buf, c); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	if err := reports.WriteFileAtomic(*out, buf.Bytes()); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	if *junit != "" {
		buf.Reset()
		if err := reports.WriteJUnit(&buf, headRs, c); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		if err := reports.WriteFileAtomic(*junit, buf.Bytes()); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
	}
	if err := reports.WriteCompareText(stdout, c); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	fmt.Fprintf(stdout, "compare: %s", *out)
	if *junit != "" {
		fmt.Fprintf(stdout, ", junit %s", *junit)
	}
	fmt.Fprintln(stdout)
	if n := c.Regressions(); n > 0 {
		return fmt.Errorf("compare: %w: %d (see %s)", errRegression, n, *out)
	}
	return nil
}

// parseFraction reads "5%" or "0.05" as 0.05.
func parseFraction(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	switch {
	case err != nil || v < 0:
		return 0, fmt.Errorf("%q: write a percentage such as 5%% or a fraction such as 0.05", s)
	case pct:
		return v / 100, nil
	case v >= 1:
		return 0, fmt.Errorf("%q is ambiguous: write %s%% for a percentage or a fraction below 1", s, t)
	}
	return v, nil
}
