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
		fmt.Fprintln(stderr, "Usage: firedrill list [DRILL] [--scenarios DIR]\n\nWithout DRILL, lists the drills, one line each: name, profiles and expected verdicts, summary.\nWith DRILL, shows that drill: incident, profiles, its parameters (name, type, default,\nper-profile defaults, description) and its short form (@nightly).")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	switch len(pos) {
	case 0:
	case 1:
		d, err := harness.FindDrill(*scenarios, pos[0])
		if err != nil {
			return badArg(err)
		}
		return showDrill(stdout, d)
	default:
		return badArg(fmt.Errorf("list takes at most one drill, got %q", strings.Join(pos, " ")))
	}
	ds, err := harness.LoadDrills(*scenarios)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Name, expectations(d), d.Summary)
	}
	return tw.Flush()
}

func expectations(d harness.Drill) string {
	var exp []string
	for _, p := range d.Profiles {
		exp = append(exp, p+"="+d.Expect[p])
	}
	sort.Strings(exp)
	return strings.Join(exp, " ")
}

// showDrill prints one drill: what `firedrill run DRILL --set` accepts,
// and what each profile and the short form run with.
func showDrill(w io.Writer, d harness.Drill) error {
	fmt.Fprintf(w, "%s: %s\n", d.Name, d.Summary)
	fmt.Fprintf(w, "  script:     %s\n", d.Path)
	fmt.Fprintf(w, "  incident:   %s\n", d.Incident)
	fmt.Fprintf(w, "  profiles:   %s\n", expectations(d))
	for _, t := range d.Host {
		who := "every profile"
		if len(t.Profiles) > 0 {
			who = strings.Join(t.Profiles, ", ")
		}
		fmt.Fprintf(w, "  host tool:  %s (Debian package %s), for %s\n", t.Command, t.Package, who)
	}
	if len(d.DBArgs) > 0 {
		fmt.Fprintf(w, "  database:   %s\n", strings.Join(d.DBArgs, " "))
	}
	if d.Nightly == nil {
		fmt.Fprintf(w, "  short form: none (no @nightly line)\n")
	} else {
		var kv []string
		for _, p := range d.Params {
			if v, ok := d.Nightly[p.Name]; ok {
				kv = append(kv, p.Name+"="+v)
			}
		}
		fmt.Fprintf(w, "  short form: %s (@nightly: what --short, the nightly and make test run)\n", strings.Join(kv, " "))
	}
	if len(d.Params) == 0 {
		fmt.Fprintf(w, "\nno parameters\n")
		return nil
	}
	fmt.Fprintf(w, "\nparameters (firedrill run %s --set name=value):\n", d.Name)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  NAME\tTYPE\tDEFAULT\tPER PROFILE\tSHORT\tDESCRIPTION\n")
	for _, p := range d.Params {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Type, p.Default, dash(p.ProfileDefaults()), dash(d.Nightly[p.Name]), p.Desc)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// usageErr turns flag errors into errUsage (flag already printed the
// problem and the usage) but keeps -h a success.
func usageErr(err error) error {
	if err == flag.ErrHelp {
		return err
	}
	return errUsage
}
