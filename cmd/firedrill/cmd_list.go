package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/firedrill-dev/firedrill/harness"
)

func listCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenarios := fs.String("scenarios", "scenarios", "folder of drill scripts")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: firedrill list [--scenarios DIR]\n\nLists the drills, one line each: name, profiles and expected verdicts, summary.")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("list takes no arguments, got %q", strings.Join(pos, " "))
	}
	ds, err := harness.LoadDrills(*scenarios)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, d := range ds {
		var exp []string
		for _, p := range d.Profiles {
			exp = append(exp, p+"="+d.Expect[p])
		}
		sort.Strings(exp)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Name, strings.Join(exp, " "), d.Summary)
	}
	return tw.Flush()
}

// usageErr turns flag errors into errUsage (flag already printed the
// problem and the usage) but keeps -h a success.
func usageErr(err error) error {
	if err == flag.ErrHelp {
		return err
	}
	return errUsage
}
