// Package harness runs drills: it brings an environment up, runs k6 on the
// drill's script with the endpoints in its environment, turns what k6 wrote
// into a result, and tears everything down whatever happens.
package harness

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/firedrill-dev/firedrill/reports"
)

// Drill is one scenarios/<name>.js script, described by the tags of its
// header comment:
//
//	/**
//	 * @drill     cache-format-flip
//	 * @incident  000_e76083ecc6911798.txt
//	 * @summary   one line for `firedrill list`
//	 * @expect    unprotected=broken protected=held
//	 * @nightly   steady=8 flipped=8 expiry=12
//	 * @param     rate      number  500              fetches per second
//	 * @param     pool_size number  2    protected=1 connections per process
//	 */
//
// @expect names the profiles the drill runs in and the verdict each must
// reach: "broken" (the incident's signature appears: a threshold fails) or
// "held" (every threshold passes).
//
// @nightly (optional) is the drill's short form: the parameters a nightly
// passes unless told otherwise (--set wins, --full drops them), and the form
// `make test` proves reaches both verdicts. A nightly runs every drill in
// every profile several times; at their default lengths that does not fit a
// nightly's time budget. Its names and values are checked against the
// @param declarations.
//
// @param declares one parameter (see Param); param(name) in the script
// reads its value, resolved by the harness for the run (see Resolve).
//
// The header is the comment block the file starts with; it ends at the
// first line of code.
type Drill struct {
	Name     string
	Path     string
	Incident string
	Summary  string
	Expect   map[string]string // profile -> verdict
	Profiles []string          // in declaration order
	Nightly  map[string]string // parameter -> value; nil without @nightly
	Params   []Param           // in declaration order
	// Host are commands the drill runs on the host, each with the Debian
	// package that has it and the profiles that need it (all when empty):
	//
	//	@host pt-online-schema-change percona-toolkit protected
	Host []HostTool
	// DBArgs are server arguments the drill's database starts with, for
	// what cannot be set at run time (SET GLOBAL), such as the connection
	// layer an incident had:
	//
	//	@db --thread-handling=pool-of-threads
	DBArgs []string
	// App is the number of releases of a service under test the drill
	// drives over HTTP: 0 for a drill of the traffic engine, 1 for
	// "@app service", 2 for "@app base head" (a rolling deploy).
	App int
	// Tier is the number of servers of a second cache tier the drill's
	// requests call, each behind a Toxiproxy proxy of its own, so that the
	// drill can cut the tier off alone (0: none):
	//
	//	@tier 1
	Tier int
}

// UsesApp says whether the drill drives a service under test.
func (d Drill) UsesApp() bool { return d.App > 0 }

// HostTool is a command a drill runs on the host (@host).
type HostTool struct {
	Command, Package string
	Profiles         []string // the profiles that run it; all when empty
}

// CheckHost says what the drill's profile needs on the host and lacks:
// one error naming the commands and the packages to install.
func (d Drill) CheckHost(profile string) error {
	var cmds, pkgs []string
	for _, t := range d.Host {
		if len(t.Profiles) > 0 && !slices.Contains(t.Profiles, profile) {
			continue
		}
		if _, err := exec.LookPath(t.Command); err != nil {
			cmds, pkgs = append(cmds, t.Command), append(pkgs, t.Package)
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	return fmt.Errorf("%s %s needs %s on the host: apt-get install %s", d.Name, profile, strings.Join(cmds, ", "), strings.Join(pkgs, " "))
}

// Overrides are the values a run sets over the declared defaults: the
// @nightly short form when short, with set (the user's --set) over it.
func (d Drill) Overrides(set map[string]string, short bool) map[string]string {
	out := map[string]string{}
	if short {
		maps.Copy(out, d.Nightly)
	}
	maps.Copy(out, set)
	return out
}

// LoadDrills reads every drill under dir (scenarios/), sorted by name.
// Scripts without an @drill tag (libraries, examples) are not drills.
func LoadDrills(dir string) ([]Drill, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.js"))
	if err != nil {
		return nil, fmt.Errorf("load drills: %w", err)
	}
	var ds []Drill
	for _, p := range paths {
		d, ok, err := parseDrill(p)
		if err != nil {
			return nil, err
		}
		if ok {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("load drills: no drills in %s (run firedrill from the repository, or pass --scenarios DIR)", dir)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
	return ds, nil
}

// FindDrill returns the drill called name, or an error listing the drills
// there are.
func FindDrill(dir, name string) (Drill, error) {
	ds, err := LoadDrills(dir)
	if err != nil {
		return Drill{}, err
	}
	var names []string
	for _, d := range ds {
		if d.Name == name {
			return d, nil
		}
		names = append(names, d.Name)
	}
	return Drill{}, fmt.Errorf("unknown drill %q: choose one of %s (see `firedrill list`)", name, strings.Join(names, ", "))
}

func parseDrill(path string) (Drill, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return Drill{}, false, fmt.Errorf("load drill: %w", err)
	}
	defer f.Close()
	d := Drill{Path: path, Expect: map[string]string{}}
	sc := bufio.NewScanner(f)
	inBlock := false
header:
	for sc.Scan() {
		raw := strings.TrimSpace(sc.Text())
		switch {
		case inBlock, strings.HasPrefix(raw, "//"):
		case strings.HasPrefix(raw, "/*"):
			inBlock = true
		case raw == "":
			continue
		default:
			// The first line of code: the header is over, and an @ further
			// down (a decorator, a string) is not a tag.
			break header
		}
		if inBlock && strings.Contains(raw, "*/") {
			inBlock = false
			raw = strings.TrimSpace(strings.TrimSuffix(raw, "*/"))
		}
		line := strings.TrimSpace(strings.TrimLeft(raw, "/*"))
		if !strings.HasPrefix(line, "@") {
			continue
		}
		key, val, _ := strings.Cut(line[1:], " ")
		val = strings.TrimSpace(val)
		switch key {
		case "drill":
			d.Name = val
		case "incident":
			d.Incident = val
		case "summary":
			d.Summary = val
		case "expect":
			for _, kv := range strings.Fields(val) {
				p, v, ok := strings.Cut(kv, "=")
				if !ok || (v != reports.Held && v != reports.Broken) {
					return Drill{}, false, fmt.Errorf("%s: bad @expect %q: want profile=held or profile=broken", path, kv)
				}
				if _, dup := d.Expect[p]; !dup {
					d.Profiles = append(d.Profiles, p)
				}
				d.Expect[p] = v
			}
		case "nightly":
			d.Nightly = map[string]string{}
			for _, kv := range strings.Fields(val) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" || v == "" {
					return Drill{}, false, fmt.Errorf("%s: bad @nightly %q: want name=value pairs, e.g. @nightly duration=40 fault_from=10", path, kv)
				}
				d.Nightly[k] = v
			}
		case "app":
			switch strings.Join(strings.Fields(val), " ") {
			case "service":
				d.App = 1
			case "base head":
				d.App = 2
			default:
				return Drill{}, false, fmt.Errorf("%s: bad @app %q: want \"service\" (one release) or \"base head\" (two, for a rolling deploy)", path, val)
			}
		case "host":
			f := strings.Fields(val)
			if len(f) < 2 {
				return Drill{}, false, fmt.Errorf("%s: bad @host %q: want COMMAND PACKAGE [PROFILE...], e.g. @host pt-online-schema-change percona-toolkit protected", path, val)
			}
			d.Host = append(d.Host, HostTool{Command: f[0], Package: f[1], Profiles: f[2:]})
		case "tier":
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || n < 1 || n > 16 {
				return Drill{}, false, fmt.Errorf("%s: bad @tier %q: want the number of tier servers, 1 to 16, e.g. @tier 1", path, val)
			}
			d.Tier = n
		case "db":
			for _, a := range strings.Fields(val) {
				if !strings.HasPrefix(a, "--") {
					return Drill{}, false, fmt.Errorf("%s: bad @db %q: want server options, e.g. @db --thread-handling=pool-of-threads", path, a)
				}
				d.DBArgs = append(d.DBArgs, a)
			}
		case "param":
			p, err := parseParam(val)
			if err != nil {
				return Drill{}, false, fmt.Errorf("%s: bad @param: %w", path, err)
			}
			if _, dup := d.Param(p.Name); dup {
				return Drill{}, false, fmt.Errorf("%s: @param %s is declared twice", path, p.Name)
			}
			d.Params = append(d.Params, p)
		}
	}
	if err := sc.Err(); err != nil {
		return Drill{}, false, fmt.Errorf("load drill %s: %w", path, err)
	}
	if d.Name == "" {
		return Drill{}, false, nil
	}
	if want := strings.TrimSuffix(filepath.Base(path), ".js"); d.Name != want {
		return Drill{}, false, fmt.Errorf("%s: @drill %q does not match the file name %q", path, d.Name, want)
	}
	if len(d.Profiles) == 0 {
		return Drill{}, false, fmt.Errorf("%s: no @expect line: declare the verdict of each profile, e.g. @expect unprotected=broken protected=held", path)
	}
	for _, t := range d.Host {
		for _, prof := range t.Profiles {
			if _, ok := d.Expect[prof]; !ok {
				return Drill{}, false, fmt.Errorf("%s: @host %s: profile %q, which @expect does not declare (%s)", path, t.Command, prof, strings.Join(d.Profiles, ", "))
			}
		}
	}
	for _, p := range d.Params {
		for _, prof := range slices.Sorted(maps.Keys(p.Profiles)) {
			if _, ok := d.Expect[prof]; !ok {
				return Drill{}, false, fmt.Errorf("%s: @param %s: a default for profile %q, which @expect does not declare (%s)", path, p.Name, prof, strings.Join(d.Profiles, ", "))
			}
		}
	}
	if err := d.CheckValues(d.Nightly); err != nil {
		return Drill{}, false, fmt.Errorf("%s: bad @nightly: %w", path, err)
	}
	return d, true, nil
}
