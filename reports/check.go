package reports

import (
	"fmt"
	"io"
	"strings"
)

// Check kinds. A drill declares its checks; the harness judges each on one
// phase of the run, on exact data (the engine's ledger and the servers'
// counters).
const (
	// Precondition must hold in every profile: traffic ran, the cache was
	// warm, every fault was injected and removed. If one fails the run is
	// invalid: it proves nothing either way.
	Precondition = "precondition"
	// Signature is the incident's observable, citing its report's line. A
	// profile declared broken passes when every signature is observed.
	Signature = "signature"
	// SteadyState is what the protections must keep true, usually relative
	// to the before phase. A profile declared held passes when every one
	// holds.
	SteadyState = "steady"
	// Integrity compares the writes the database acknowledged with what it
	// holds at the end of the run, per tenant: acknowledged <= rise <=
	// attempted (a write that timed out may still have committed). A
	// profile declared held passes only when it holds: a protection that
	// keeps latency by losing writes does not hold.
	Integrity = "integrity"
)

// CheckKinds lists the kinds in report order.
var CheckKinds = []string{Precondition, Signature, SteadyState, Integrity}

// Check outcomes: a precondition or steady state passes or fails; a
// signature is observed or not.
const (
	Pass        = "pass"
	Fail        = "fail"
	Observed    = "observed"
	NotObserved = "not observed"
)

// Check is one judged check: the expression, what the run measured, and
// the outcome.
type Check struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Phase string `json:"phase"`
	// Expr is the expression as declared, e.g. "write_p99 <= 2 x before + 20".
	Expr string `json:"expr"`
	// Observed is the metric's value in Phase; null when the phase had no
	// data for it (the check then fails, or is not observed).
	Observed *Float `json:"observed"`
	// Relative is the phase the bound is relative to, Reference the
	// metric's value there, Bound what Observed was compared with.
	Relative  string `json:"relative,omitempty"`
	Reference *Float `json:"reference,omitempty"`
	Bound     *Float `json:"bound,omitempty"`
	Outcome   string `json:"outcome"`
	// Incident cites the incident report's line ("file:line") a signature
	// reproduces.
	Incident string `json:"incident,omitempty"`
	// Figure is the incident's own figure for what the check measures,
	// as the drill declares it (firedrill fidelity sets it beside
	// Observed).
	Figure string `json:"figure,omitempty"`
	// Note says why a check had no data, or what else a reader should know.
	Note string `json:"note,omitempty"`
	// Automatic is true for the preconditions the harness adds to every
	// drill (traffic ran, faults removed, measurement complete).
	Automatic bool `json:"automatic,omitempty"`
}

// OK says whether the check came out as its kind wants: a precondition or
// steady state passed, a signature was observed.
func (c Check) OK() bool { return c.Outcome == Pass || c.Outcome == Observed }

// Label is the check's kind and name, for lists in texts.
func (c Check) Label() string { return fmt.Sprintf("%s %q", c.Kind, c.Name) }

// Key identifies a check across runs of one drill and profile.
func (c Check) Key() string { return c.Kind + "/" + c.Name }

// Required says whether the check decides the verdict of a profile
// declared expected: preconditions always, signatures when the profile
// must break, steady states when it must hold. The others are reported
// for information.
func (c Check) Required(expected string) bool {
	switch c.Kind {
	case Precondition:
		return true
	case Signature:
		return expected == Broken
	case SteadyState, Integrity:
		return expected == Held
	}
	return false
}

// CheckCounts tallies a run's checks for one-line summaries.
type CheckCounts struct {
	Preconditions, PreconditionsPassed int
	Signatures, SignaturesObserved     int
	SteadyStates, SteadyStatesKept     int
	Integrity, IntegrityKept           int
}

// Counts tallies r's checks by kind.
func (r *Result) Counts() CheckCounts {
	var n CheckCounts
	for _, c := range r.Checks {
		switch c.Kind {
		case Precondition:
			n.Preconditions++
			if c.OK() {
				n.PreconditionsPassed++
			}
		case Signature:
			n.Signatures++
			if c.OK() {
				n.SignaturesObserved++
			}
		case SteadyState:
			n.SteadyStates++
			if c.OK() {
				n.SteadyStatesKept++
			}
		case Integrity:
			n.Integrity++
			if c.OK() {
				n.IntegrityKept++
			}
		}
	}
	return n
}

// String is the one-line summary: "preconditions 4/4, signatures 2/2
// observed, steady states 1/3 kept".
func (n CheckCounts) String() string {
	var parts []string
	if n.Preconditions > 0 {
		parts = append(parts, fmt.Sprintf("preconditions %d/%d", n.PreconditionsPassed, n.Preconditions))
	}
	if n.Signatures > 0 {
		parts = append(parts, fmt.Sprintf("signatures %d/%d observed", n.SignaturesObserved, n.Signatures))
	}
	if n.SteadyStates > 0 {
		parts = append(parts, fmt.Sprintf("steady states %d/%d kept", n.SteadyStatesKept, n.SteadyStates))
	}
	if n.Integrity > 0 {
		parts = append(parts, fmt.Sprintf("integrity %d/%d kept", n.IntegrityKept, n.Integrity))
	}
	return strings.Join(parts, ", ")
}

// Text is the check as one line of text: outcome, kind, name, phase, the
// expression with its values, the incident line.
func (c Check) Text() string {
	s := fmt.Sprintf("%-12s %-12s %s [%s] %s", strings.ToUpper(c.Outcome), c.Kind, c.Name, c.Phase, c.Expr)
	s += ": " + c.Values()
	if c.Incident != "" {
		s += " (" + c.Incident + ")"
	}
	return s
}

// Values says what was measured: "observed 130 (before 3.8, bound 38)".
func (c Check) Values() string {
	if c.Observed == nil {
		if c.Note != "" {
			return c.Note
		}
		return "no data"
	}
	s := "observed " + fmtNum(float64(*c.Observed))
	var extra []string
	if c.Reference != nil {
		extra = append(extra, c.Relative+" "+fmtNum(float64(*c.Reference)))
	}
	if c.Bound != nil {
		extra = append(extra, "bound "+fmtNum(float64(*c.Bound)))
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	if c.Note != "" {
		s += "; " + c.Note
	}
	return s
}

// WriteChecksText writes r's verdict and its checks, one a line, the way
// `firedrill run` prints them after a run.
func WriteChecksText(w io.Writer, r *Result) error {
	verdict := "PASS"
	if !r.Verdict.Pass {
		verdict = "FAIL"
	}
	_, err := fmt.Fprintf(w, "%s %s: %s: expected %s, reached %s (%s)\n", r.Drill, r.Profile, verdict, r.Verdict.Expected, r.Verdict.Reached, r.Counts())
	for _, c := range r.Checks {
		if err != nil {
			break
		}
		mark := " "
		if c.Required(r.Verdict.Expected) && !c.OK() {
			mark = "✗"
		}
		_, err = fmt.Fprintf(w, "  %s %s\n", mark, c.Text())
	}
	return err
}
