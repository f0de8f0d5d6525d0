// Package sweep runs one drill over a grid of parameter values, each cell
// in a fresh environment, and maps where the system recovers and where it
// tips into a failure that outlives its trigger: the experiment the
// metastability literature runs (load against trigger size). An
// interrupted sweep resumes where it stopped.
package sweep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/harness"
	"github.com/firedrill-dev/firedrill/reports"
)

// Axis is one varied parameter and its values, in the order given.
type Axis struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// ParseVary reads a --vary flag, "name=v1,v2,...".
func ParseVary(s string) (Axis, error) {
	name, vals, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.TrimSpace(vals) == "" {
		return Axis{}, fmt.Errorf("--vary %q: want name=v1,v2,... (a parameter the drill declares and its values)", s)
	}
	a := Axis{Name: name}
	seen := map[string]bool{}
	for _, v := range strings.Split(vals, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			return Axis{}, fmt.Errorf("--vary %q: an empty value", s)
		}
		if seen[v] {
			return Axis{}, fmt.Errorf("--vary %q: value %q given twice", s, v)
		}
		seen[v] = true
		a.Values = append(a.Values, v)
	}
	return a, nil
}

// RunFunc runs one drill in one profile: harness.Run, or a stand-in in tests.
type RunFunc func(ctx context.Context, o harness.RunOptions) (*reports.Result, string, error)

// Options configure a sweep.
type Options struct {
	Drill    harness.Drill
	Axes     []Axis
	Profiles []string // default: every profile the drill declares
	Repeats  int      // default 1
	// Short runs each cell in the drill's @nightly short form (the axes
	// and Set over it).
	Short bool
	// Set are fixed parameter values under the axes (--set).
	Set      map[string]string
	OutDir   string
	Template harness.RunOptions // K6, Memcached, Timeout, Seed, ...
	Run      RunFunc            // default harness.Run
	Progress io.Writer
}

// Sweep is sweep.json: the grid and every cell run so far.
type Sweep struct {
	Drill    string            `json:"drill"`
	Axes     []Axis            `json:"axes"`
	Profiles []string          `json:"profiles"`
	Repeats  int               `json:"repeats"`
	Short    bool              `json:"short"`
	Set      map[string]string `json:"set,omitempty"`
	// DrillDigest is the SHA-256 of the drill's file and of the library
	// beside it (lib/*.js) when the sweep started: every cell runs the
	// drill as it was then, so an edit mid-sweep stops it rather than mix
	// two drills in one map.
	DrillDigest string `json:"drill_sha256,omitempty"`
	// Capacity is the database's capacity (fills/s) the first run
	// measured: every cell's load is shown as a share of this one figure.
	Capacity float64   `json:"capacity_fills_per_s,omitempty"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
	Complete bool      `json:"complete"`
	Cells    []Cell    `json:"cells"`
}

// Cell is one run of one point of the grid in one profile.
type Cell struct {
	Params  map[string]string `json:"params"` // the axes' values
	Profile string            `json:"profile"`
	Repeat  int               `json:"repeat"`
	// Report is the run's report.html, relative to the sweep's folder.
	Report   string `json:"report,omitempty"`
	Expected string `json:"expected,omitempty"`
	Verdict  string `json:"verdict,omitempty"` // reached; "" when the run gave no result
	Pass     bool   `json:"pass"`
	// Recovered and RecoveryS are the recovery rule's judgement, for a
	// drill that watches recovery.
	Recovered *bool    `json:"recovered,omitempty"`
	RecoveryS *float64 `json:"recovery_s,omitempty"`
	// Judged is the rule's deciding window: why a cell stayed down.
	Judged *reports.RecoveryWindow `json:"judged,omitempty"`
	// DBRatePeak is the busiest second of database queries in the run.
	DBRatePeak *float64 `json:"db_rate_peak,omitempty"`
	// ServedAfter is the share of the offered operations served in the
	// phase after the trigger ("after"): the goodput the fleet kept, which
	// tells apart two cells that both stayed down (the literature's "more
	// clients make it worse" is a lower goodput at the same offered load).
	ServedAfter *float64 `json:"served_after,omitempty"`
	// Load is the offered load before the trigger (operations/s), and
	// LoadShare that load over the sweep's Capacity: the share of the
	// database a cold cache would need.
	Load      *float64 `json:"offered_rate,omitempty"`
	LoadShare *float64 `json:"load_share,omitempty"`
	Capacity  float64  `json:"capacity_fills_per_s,omitempty"` // this run's own measurement
	Error     string   `json:"error,omitempty"`
	Seconds   float64  `json:"seconds"`
}

// Done says whether the cell has a result; a cell that ended in an error
// without one is run again when the sweep resumes.
func (c Cell) Done() bool { return c.Verdict != "" }

func (c Cell) key() string { return cellKey(c.Params, c.Profile, c.Repeat) }

func cellKey(params map[string]string, profile string, rep int) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(params)) {
		fmt.Fprintf(&b, "%s=%s,", k, params[k])
	}
	fmt.Fprintf(&b, "%s#%d", profile, rep)
	return b.String()
}

// Points is the grid's points in order: the first axis outermost.
func Points(axes []Axis) []map[string]string {
	pts := []map[string]string{{}}
	for _, a := range axes {
		var next []map[string]string
		for _, p := range pts {
			for _, v := range a.Values {
				q := maps.Clone(p)
				q[a.Name] = v
				next = append(next, q)
			}
		}
		pts = next
	}
	return pts
}

// File names in the sweep's folder.
const (
	JSONFile = "sweep.json"
	TextFile = "sweep.txt"
	HTMLFile = "sweep.html"
)

// Validate checks the options against the drill before anything runs.
func (o *Options) Validate() error {
	if len(o.Axes) == 0 {
		return errors.New("sweep: no --vary: give at least one, such as --vary rate=100,200,400")
	}
	seen := map[string]bool{}
	for _, a := range o.Axes {
		if seen[a.Name] {
			return fmt.Errorf("sweep: --vary %s given twice: put all its values in one --vary %s=v1,v2", a.Name, a.Name)
		}
		seen[a.Name] = true
		if _, ok := o.Set[a.Name]; ok {
			return fmt.Errorf("sweep: %s is both varied and --set: drop one", a.Name)
		}
		for _, v := range a.Values {
			if err := o.Drill.CheckValues(map[string]string{a.Name: v}); err != nil {
				return fmt.Errorf("sweep: --vary: %w", err)
			}
		}
	}
	if err := o.Drill.CheckValues(o.Set); err != nil {
		return fmt.Errorf("sweep: --set: %w", err)
	}
	if len(o.Profiles) == 0 {
		o.Profiles = o.Drill.Profiles
	}
	for _, p := range o.Profiles {
		if !slices.Contains(o.Drill.Profiles, p) {
			return fmt.Errorf("sweep: drill %s has no profile %q; it declares %s", o.Drill.Name, p, strings.Join(o.Drill.Profiles, ", "))
		}
	}
	if o.Repeats == 0 {
		o.Repeats = 1
	}
	if o.Repeats < 1 {
		return fmt.Errorf("sweep: --repeats must be at least 1, got %d", o.Repeats)
	}
	if o.Short && o.Drill.Nightly == nil {
		return fmt.Errorf("sweep: --short: drill %s has no @nightly short form", o.Drill.Name)
	}
	if o.OutDir == "" {
		return errors.New("sweep: no output folder")
	}
	return nil
}

// Run runs every cell not yet done in OutDir's sweep.json, writing
// sweep.json, sweep.txt and sweep.html after each, and returns the sweep.
// A folder holding a sweep of another grid is an error: resuming it would
// mix two experiments.
func Run(ctx context.Context, o Options) (*Sweep, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Run == nil {
		o.Run = harness.Run
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	digest, err := drillDigest(o.Drill.Path)
	if err != nil {
		return nil, err
	}
	want := &Sweep{Drill: o.Drill.Name, Axes: o.Axes, Profiles: o.Profiles, Repeats: o.Repeats, Short: o.Short,
		Set: o.Set, DrillDigest: digest, Started: time.Now().UTC()}
	s, err := Read(o.OutDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		s = want
	case err != nil:
		return nil, err
	default:
		if why := sameGrid(s, want); why != "" {
			return nil, fmt.Errorf("sweep: %s holds a sweep of another grid (%s): give another --out, or the flags it was started with to resume it", o.OutDir, why)
		}
		if s.DrillDigest != "" && s.DrillDigest != digest {
			return nil, fmt.Errorf("sweep: %s was run with another version of %s (or of its lib/): its cells would mix two drills; restore the drill to resume, or give another --out", o.OutDir, o.Drill.Path)
		}
		s.Complete = false
	}
	done := map[string]int{}
	for i, c := range s.Cells {
		done[c.key()] = i
	}
	type job struct {
		params  map[string]string
		profile string
		rep     int
	}
	var jobs []job
	for _, pt := range Points(o.Axes) {
		for _, p := range o.Profiles {
			for rep := 1; rep <= o.Repeats; rep++ {
				if i, ok := done[cellKey(pt, p, rep)]; ok && s.Cells[i].Done() {
					continue
				}
				jobs = append(jobs, job{pt, p, rep})
			}
		}
	}
	total := len(Points(o.Axes)) * len(o.Profiles) * o.Repeats
	if skipped := total - len(jobs); skipped > 0 {
		fmt.Fprintf(o.Progress, "sweep: resuming %s: %d of %d cells done, %d to run\n", o.OutDir, skipped, total, len(jobs))
	}
	start := time.Now()
	for n, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		if now, err := drillDigest(o.Drill.Path); err != nil || now != digest {
			s.Complete = false
			if werr := write(o.OutDir, s); werr != nil {
				return s, werr
			}
			if err == nil {
				err = fmt.Errorf("%s (or its lib/) changed since the sweep started: the cells left would run another drill than those done; restore it and run the same command to resume, or start a new sweep with another --out", o.Drill.Path)
			}
			return s, fmt.Errorf("sweep: %w", err)
		}
		ro := o.Template
		ro.Drill, ro.Profile = o.Drill, j.profile
		params := maps.Clone(o.Set)
		if params == nil {
			params = map[string]string{}
		}
		maps.Copy(params, j.params)
		ro.Params = o.Drill.Overrides(params, o.Short)
		ro.OutDir = filepath.Join(o.OutDir, "runs")
		label := describe(o.Axes, j.params)
		fmt.Fprintf(o.Progress, "sweep: [%d/%d] %s %s repeat %d/%d\n", n+1, len(jobs), label, j.profile, j.rep, o.Repeats)
		t0 := time.Now()
		res, dir, err := o.Run(ctx, ro)
		c := Cell{Params: j.params, Profile: j.profile, Repeat: j.rep, Seconds: time.Since(t0).Round(time.Second).Seconds()}
		if dir != "" {
			if rel, rerr := filepath.Rel(o.OutDir, filepath.Join(dir, "report.html")); rerr == nil {
				c.Report = filepath.ToSlash(rel)
			}
		}
		if err != nil {
			c.Error = err.Error()
		}
		if res != nil && ctx.Err() == nil {
			fill(&c, res)
			if s.Capacity == 0 && c.Capacity > 0 {
				s.Capacity = c.Capacity
			}
		}
		if s.Capacity > 0 && c.Load != nil {
			share := *c.Load / s.Capacity
			c.LoadShare = &share
		}
		if i, ok := done[c.key()]; ok {
			s.Cells[i] = c
		} else {
			done[c.key()] = len(s.Cells)
			s.Cells = append(s.Cells, c)
		}
		status := outcomeText(c)
		if c.Error != "" && !c.Done() {
			status = "ERROR: " + c.Error
		}
		eta := ""
		if left := len(jobs) - n - 1; left > 0 {
			eta = fmt.Sprintf(" (about %s left)", (time.Since(start) / time.Duration(n+1) * time.Duration(left)).Round(time.Minute))
		}
		fmt.Fprintf(o.Progress, "sweep: [%d/%d] %s %s repeat %d: %s in %s%s\n", n+1, len(jobs), label, j.profile, j.rep, status, time.Since(t0).Round(time.Second), eta)
		if err := write(o.OutDir, s); err != nil {
			return s, err
		}
	}
	s.Complete = ctx.Err() == nil && doneCells(s) == total
	if err := write(o.OutDir, s); err != nil {
		return s, err
	}
	if ctx.Err() != nil {
		return s, fmt.Errorf("sweep: interrupted: run the same command again to resume: %w", context.Cause(ctx))
	}
	if !s.Complete {
		return s, errors.New("sweep: some cells gave no result (see their errors in sweep.json); run the same command again to retry them")
	}
	return s, nil
}

// drillDigest is the SHA-256 of the drill's file and of every lib/*.js
// beside it, which a drill imports; "" for a drill read from nowhere (a
// test's).
func drillDigest(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	lib, err := filepath.Glob(filepath.Join(filepath.Dir(path), "lib", "*.js"))
	if err != nil {
		return "", fmt.Errorf("sweep: %w", err)
	}
	slices.Sort(lib)
	h := sha256.New()
	for _, f := range append([]string{path}, lib...) {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("sweep: read the drill: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// doneCells counts the cells with a result; a sweep's cells are unique
// by key, so it is complete when they number the grid's.
func doneCells(s *Sweep) int {
	n := 0
	for _, c := range s.Cells {
		if c.Done() {
			n++
		}
	}
	return n
}

// sameGrid says how two sweeps' grids differ, "" when they do not.
func sameGrid(a, b *Sweep) string {
	switch {
	case a.Drill != b.Drill:
		return fmt.Sprintf("drill %s, not %s", a.Drill, b.Drill)
	case !slices.EqualFunc(a.Axes, b.Axes, func(x, y Axis) bool { return x.Name == y.Name && slices.Equal(x.Values, y.Values) }):
		return fmt.Sprintf("axes %s, not %s", axesText(a.Axes), axesText(b.Axes))
	case !slices.Equal(a.Profiles, b.Profiles):
		return fmt.Sprintf("profiles %s, not %s", strings.Join(a.Profiles, ","), strings.Join(b.Profiles, ","))
	case a.Repeats != b.Repeats:
		return fmt.Sprintf("%d repeats, not %d", a.Repeats, b.Repeats)
	case a.Short != b.Short:
		return fmt.Sprintf("short form %v, not %v", a.Short, b.Short)
	case !maps.Equal(a.Set, b.Set) && len(a.Set)+len(b.Set) > 0:
		return fmt.Sprintf("--set %v, not %v", a.Set, b.Set)
	}
	return ""
}

func axesText(axes []Axis) string {
	var parts []string
	for _, a := range axes {
		parts = append(parts, a.Name+"="+strings.Join(a.Values, ","))
	}
	return strings.Join(parts, " ")
}

func describe(axes []Axis, params map[string]string) string {
	var parts []string
	for _, a := range axes {
		parts = append(parts, a.Name+"="+params[a.Name])
	}
	return strings.Join(parts, " ")
}

// fill takes what the map shows from a run's result.
func fill(c *Cell, r *reports.Result) {
	c.Expected, c.Verdict, c.Pass = r.Verdict.Expected, r.Verdict.Reached, r.Verdict.Pass
	if rec := r.Recovery; rec != nil {
		ok := rec.Recovered
		c.Recovered = &ok
		c.Judged = rec.Judged
		if rec.RecoveryS != nil {
			v := float64(*rec.RecoveryS)
			c.RecoveryS = &v
		}
	}
	c.Capacity = r.Environment.DBCapacity
	var before *reports.Phase
	for i := range r.Phases {
		p := &r.Phases[i]
		switch p.Name {
		case "run":
			if v, ok := p.Summary["db_rate_peak"]; ok {
				f := float64(v)
				c.DBRatePeak = &f
			}
		case "before":
			before = p
		case "after":
			if v, ok := p.Summary["served_ratio"]; ok {
				f := float64(v)
				c.ServedAfter = &f
			}
		}
	}
	if before == nil && len(r.Phases) > 0 && r.Phases[0].Name != "run" {
		before = &r.Phases[0] // a drill's own first phase ("calm")
	}
	if before != nil {
		if v, ok := before.Summary["offered_rate"]; ok {
			f := float64(v)
			c.Load = &f
		}
	}
}

// Read reads dir's sweep.json.
func Read(dir string) (*Sweep, error) {
	path := filepath.Join(dir, JSONFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Sweep
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("sweep: %s is not a sweep's record (%v): remove it or give another --out", path, err)
	}
	if s.Drill == "" || len(s.Axes) == 0 {
		return nil, fmt.Errorf("sweep: %s names no drill or axes: remove it or give another --out", path)
	}
	return &s, nil
}

func write(dir string, s *Sweep) error {
	s.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	if err := reports.WriteFileAtomic(filepath.Join(dir, JSONFile), append(b, '\n')); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	var t strings.Builder
	WriteText(&t, s)
	if err := reports.WriteFileAtomic(filepath.Join(dir, TextFile), []byte(t.String())); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	var h strings.Builder
	if err := WriteHTML(&h, s); err != nil {
		return fmt.Errorf("sweep: map: %w", err)
	}
	if err := reports.WriteFileAtomic(filepath.Join(dir, HTMLFile), []byte(h.String())); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return nil
}
