package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/reports"
)

// Spec is what a drill declares for its verdict, in its options:
//
//	export const options = {
//	  scenarios: { ... },
//	  ext: { firedrill: { warmup: 10, windows: [...], checks: [...] } },
//	};
//
// (scenarios/lib/firedrill.js builds the objects). The harness reads it
// with `k6 inspect`, under the same profile and parameters the run gets,
// before it starts anything, and judges the run's phases on it after k6
// has exited.
type Spec struct {
	// Warmup is how many seconds of traffic (from its start) fill the
	// cache before the run is judged: phase "warmup", before "before".
	Warmup float64 `json:"warmup,omitempty"`
	// Windows are phases of the drill's own, such as "recovery": from 10 s
	// to 40 s after the trigger's removal.
	Windows []WindowSpec `json:"windows,omitempty"`
	// Recovery, when set, has the harness judge recovery after a trigger
	// (metrics recovered, recovery_s, relapse_s).
	Recovery *RecoverySpec `json:"recovery,omitempty"`
	// Checks decide the verdict.
	Checks []CheckSpec `json:"checks"`
	// HTTP is set for a drill that drives a service under test (@app): its
	// traffic is k6's HTTP requests, not an engine replay.
	HTTP bool `json:"-"`
}

// WindowSpec is a phase of the drill's own: [From, To) seconds counted
// from the end of phase After, from the start of phase Of, or from time
// zero when neither is set; cut at the end of traffic.
type WindowSpec struct {
	Name  string  `json:"name"`
	After string  `json:"after,omitempty"`
	Of    string  `json:"of,omitempty"`
	From  float64 `json:"from"`
	To    float64 `json:"to"`
}

// CheckSpec is one declared check; see reports.Check for the kinds.
type CheckSpec struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Phase string `json:"phase"`
	Expr  string `json:"expr"`
	// Incident cites the incident report line the signature reproduces,
	// "file:line" (required for signatures).
	Incident string `json:"incident,omitempty"`
	// Figure is the incident's own figure for what the check measures
	// ("about 60 ms to over 30 s"), for the fidelity table beside the
	// drill's; optional, on any kind of check.
	Figure string `json:"figure,omitempty"`
	// Profiles limits the check to these profiles (all when empty).
	Profiles []string `json:"profiles,omitempty"`

	parsed expr
}

// expr is a parsed check expression: metric{sel} op k [x rel] [+ plus].
type expr struct {
	metric string
	sel    map[string]string
	op     string
	k      float64
	rel    string // phase the bound is relative to ("" for an absolute bound)
	// relMetric is the metric measured in rel ("": the check's own), as in
	// `db_rate_peak >= 10 x db_rate@before`: a peak against a mean
	relMetric string
	plus      float64
}

var (
	exprRE = regexp.MustCompile(`^\s*([a-z][a-z0-9_]*)\s*(\{[^}]*\})?\s*(<=|>=|==|<|>)\s*(.+?)\s*$`)
	rhsRE  = regexp.MustCompile(`^([-+]?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)(?:\s*(?:x|\*)\s*(?:([a-z][a-z0-9_]*)@)?([A-Za-z][A-Za-z0-9_:.\-]*))?(?:\s*\+\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?))?$`)
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// parseExpr reads "metric{tag=value,...} op number [x phase] [+ number]".
func parseExpr(s string) (expr, error) {
	m := exprRE.FindStringSubmatch(s)
	if m == nil {
		return expr{}, fmt.Errorf("expression %q: want `metric op number`, `metric op k x phase` or `metric op k x phase + number` (`k x other_metric@phase` to compare with another metric), e.g. `write_p99 <= 2 x before + 20`", s)
	}
	e := expr{metric: m[1], op: m[3]}
	if m[2] != "" {
		e.sel = map[string]string{}
		for _, kv := range strings.Split(strings.Trim(m[2], "{}"), ",") {
			k, v, ok := strings.Cut(kv, "=")
			k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"'`)
			if !ok || k == "" || v == "" {
				return expr{}, fmt.Errorf("expression %q: bad tag selector %q: want {name=value,...}", s, m[2])
			}
			e.sel[k] = v
		}
	}
	r := rhsRE.FindStringSubmatch(m[4])
	if r == nil {
		return expr{}, fmt.Errorf("expression %q: bad bound %q: want a number, `k x phase`, `k x metric@phase` or `k x phase + number`", s, m[4])
	}
	e.k, _ = strconv.ParseFloat(r[1], 64)
	e.relMetric, e.rel = r[2], r[3]
	if r[4] != "" {
		if e.rel == "" {
			return expr{}, fmt.Errorf("expression %q: `+ number` goes after `k x phase`", s)
		}
		e.plus, _ = strconv.ParseFloat(r[4], 64)
	}
	return e, nil
}

// holds compares an observed value with a bound.
func (e expr) holds(v, bound float64) bool {
	switch e.op {
	case "<":
		return v < bound
	case "<=":
		return v <= bound
	case ">":
		return v > bound
	case ">=":
		return v >= bound
	}
	return v == bound
}

// Validate checks the spec as far as it can before the run: kinds,
// expressions, names, citations, and that every profile has checks that
// can reach its declared verdict.
func (s *Spec) Validate(d Drill) error {
	profiles := d.Profiles
	if len(s.Checks) == 0 {
		return errors.New("no checks: declare them in options.ext.firedrill.checks (see scenarios/lib/firedrill.js and the README's \"Checks and verdicts\")")
	}
	if s.Warmup < 0 {
		return fmt.Errorf("warmup %v: must be >= 0 seconds", s.Warmup)
	}
	if s.Recovery != nil {
		if err := s.Recovery.validate(); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i, w := range s.Windows {
		if !nameRE.MatchString(w.Name) || reservedPhase(w.Name) {
			return fmt.Errorf("window %d: name %q must be lower_case and not before, after, warmup or run", i, w.Name)
		}
		if seen[w.Name] {
			return fmt.Errorf("window %q declared twice", w.Name)
		}
		seen[w.Name] = true
		if !(w.To > w.From) {
			return fmt.Errorf("window %q: to (%v) must be after from (%v)", w.Name, w.To, w.From)
		}
		if w.After != "" && w.Of != "" {
			return fmt.Errorf("window %q: give after (counted from a phase's end) or of (from its start), not both", w.Name)
		}
	}
	names := map[string]bool{}
	for i := range s.Checks {
		c := &s.Checks[i]
		where := fmt.Sprintf("check %d (%q)", i, c.Name)
		switch {
		case c.Name == "":
			return fmt.Errorf("check %d: no name", i)
		case names[c.Name]:
			return fmt.Errorf("%s: the name is used twice", where)
		case !slices.Contains(reports.CheckKinds, c.Kind):
			return fmt.Errorf("%s: kind %q: want one of %s", where, c.Kind, strings.Join(reports.CheckKinds, ", "))
		case c.Phase == "":
			return fmt.Errorf("%s: no phase", where)
		case c.Kind == reports.Integrity && c.Phase != phaseRun:
			return fmt.Errorf("%s: an integrity check judges the whole run: phase %q, got %q", where, phaseRun, c.Phase)
		case c.Kind == reports.Signature && !citeRE.MatchString(c.Incident):
			return fmt.Errorf("%s: a signature cites its incident's line as \"file:line\", got %q", where, c.Incident)
		}
		names[c.Name] = true
		for _, p := range c.Profiles {
			if !slices.Contains(profiles, p) {
				return fmt.Errorf("%s: profile %q is not one the drill declares (%s)", where, p, strings.Join(profiles, ", "))
			}
		}
		e, err := parseExpr(c.Expr)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		c.parsed = e
	}
	for _, p := range profiles {
		want, kind := d.Expect[p], reports.SteadyState
		if want == reports.Broken {
			kind = reports.Signature
		}
		n := 0
		for _, c := range s.For(p) {
			if c.Kind == kind || kind == reports.SteadyState && c.Kind == reports.Integrity {
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("profile %s declared %s has no %s check: it could never reach its verdict", p, want, kind)
		}
	}
	return nil
}

var citeRE = regexp.MustCompile(`^[^\s:]+\.txt:[0-9]+$`)

func reservedPhase(n string) bool {
	switch n {
	case phaseBefore, phaseAfter, phaseWarmup, phaseRun:
		return true
	}
	return false
}

// For reports which checks apply to profile.
func (s *Spec) For(profile string) []CheckSpec {
	var out []CheckSpec
	for _, c := range s.Checks {
		if len(c.Profiles) == 0 || slices.Contains(c.Profiles, profile) {
			out = append(out, c)
		}
	}
	return out
}

// InspectSpec reads a drill's spec with `k6 inspect`, which evaluates the
// script's init code under vars (FIREDRILL_PROFILE and the parameters), and
// validates it.
func InspectSpec(ctx context.Context, k6 string, d Drill, vars []string) (*Spec, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	args := []string{"inspect"}
	for _, v := range vars {
		args = append(args, "-e", v)
	}
	args = append(args, d.Path)
	cmd := exec.CommandContext(ctx, k6, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 && len(msg) > 2000 {
			msg = msg[i+1:]
		}
		return nil, fmt.Errorf("drill %s: k6 inspect: %v: %s", d.Name, err, msg)
	}
	var opts struct {
		Ext map[string]json.RawMessage `json:"ext"`
	}
	if err := json.Unmarshal(out.Bytes(), &opts); err != nil {
		return nil, fmt.Errorf("drill %s: k6 inspect printed no options: %w", d.Name, err)
	}
	raw, ok := opts.Ext["firedrill"]
	if !ok {
		return nil, fmt.Errorf("drill %s: no options.ext.firedrill: declare the drill's checks there (see the README's \"Checks and verdicts\")", d.Name)
	}
	return ParseSpec(d, raw)
}

// ParseSpec decodes and validates a drill's spec.
func ParseSpec(d Drill, raw []byte) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("drill %s: options.ext.firedrill: %w", d.Name, err)
	}
	if err := s.Validate(d); err != nil {
		return nil, fmt.Errorf("drill %s: options.ext.firedrill: %w", d.Name, err)
	}
	return &s, nil
}

// RecoverySpec asks the harness to judge recovery after a trigger, as the
// metastability literature measures it (Huang et al., OSDI 2022): the run
// is recovered at the first window of Window seconds that starts at least
// Settle seconds after the trigger's phase ends, in which the mean fetch
// latency is at most LatencyFactor x the before phase's (plus
// LatencySlack ms) and at most ErrorBudget of the offered operations are
// not served. The harness
// watches to the end of the run: a later window that fails again is a
// relapse, and the run counts as not recovered.
//
// Reference names the phase whose mean latency is the healthy one (default
// before): a drill may declare a window that ends a little before the
// trigger, so the operations the trigger's onset caught do not count as
// healthy.
//
// LatencySlack (ms, default 0: the literature's rule) is the host's noise
// floor on a mean latency. The literature's services answer in tens of
// milliseconds, where 1.1x is a few ms; a cache hit on a shared 2-core
// host answers in under 2 ms, whose 1.1x (0.2 ms) is less than the mean
// moves between two calm windows of the same run. A drill that judges such
// latencies declares the floor it measured, and the result records it.
//
// NoiseSigmas (default 0: the literature's rule) widens the band by that
// many standard errors of the difference between the window's mean and
// the reference's, each estimated from its own 1 s means. The literature's
// services average thousands of similar requests a second; a cache whose
// mean is a few dozen misses a second at 20-40 ms among 1 ms hits moves
// by a third between two calm phases of the same drill (connection-storm,
// rate 100: 2.25 and 3.02 ms), more than 1.1x allows, while a fleet that
// has not recovered is off by hundreds of ms.
type RecoverySpec struct {
	After         string  `json:"after"`
	Reference     string  `json:"reference,omitempty"`
	Window        float64 `json:"window,omitempty"`
	Settle        float64 `json:"settle,omitempty"`
	LatencyFactor float64 `json:"latency_factor,omitempty"`
	LatencySlack  float64 `json:"latency_slack_ms,omitempty"`
	NoiseSigmas   float64 `json:"noise_sigmas,omitempty"`
	ErrorBudget   float64 `json:"error_budget,omitempty"`
}

// withDefaults fills the literature's values: windows of 30 s from 10 s
// after the removal, latency within 1.1x, and 1% of operations not served.
func (r RecoverySpec) withDefaults() RecoverySpec {
	if r.Window == 0 {
		r.Window = 30
	}
	if r.Settle == 0 {
		r.Settle = 10
	}
	if r.LatencyFactor == 0 {
		r.LatencyFactor = 1.1
	}
	if r.ErrorBudget == 0 {
		r.ErrorBudget = 0.01
	}
	if r.Reference == "" {
		r.Reference = phaseBefore
	}
	return r
}

func (r RecoverySpec) validate() error {
	switch {
	case r.After == "":
		return errors.New("recovery: after names the trigger's phase (a fault's kind)")
	case r.Window < 0 || r.Settle < 0 || r.LatencyFactor < 0 || r.LatencySlack < 0 || r.NoiseSigmas < 0 || r.ErrorBudget < 0 || r.ErrorBudget >= 1:
		return fmt.Errorf("recovery: window %v, settle %v, latency_factor %v, latency_slack_ms %v, noise_sigmas %v must be >= 0 and error_budget %v in [0, 1)",
			r.Window, r.Settle, r.LatencyFactor, r.LatencySlack, r.NoiseSigmas, r.ErrorBudget)
	case r.Settle != 0 && r.Settle < 10:
		// the literature's windows start at least 10 s after the removal:
		// earlier, the wake of the trigger itself would count as recovery
		return fmt.Errorf("recovery: settle %v s: a recovery window starts at least 10 s after the trigger's removal; give 10 or more, or leave it out", r.Settle)
	}
	return nil
}
