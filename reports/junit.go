package reports

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// JUnit XML as Jenkins, GitLab and GitHub test reporters read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr,omitempty"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut *junitText    `xml:"system-out,omitempty"`
}

// junitText keeps line breaks readable in the XML as CDATA.
type junitText struct {
	Text string `xml:",cdata"`
}

func text(s string) *junitText { return &junitText{s} }

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

func (s *junitSuite) add(c junitCase) {
	s.Tests++
	if c.Failure != nil {
		s.Failures++
	}
	if c.Skipped != nil {
		s.Skipped++
	}
	s.Cases = append(s.Cases, c)
}

// WriteJUnit writes JUnit XML so any CI shows failing drills: a suite
// "verdicts" with one test case per drill and profile of results (failing
// when any of its runs failed its verdict), a suite "checks" with one case
// per check of each drill and profile (failing when a check the profile's
// verdict requires did not come out as required in some run; the others
// say what they measured), and when c is not nil a suite "regressions"
// with one case per verdict, check that changed and key metric (failing on
// a regression, skipped when the comparison cannot tell). Either argument
// may be empty.
func WriteJUnit(w io.Writer, results []*Result, c *Comparison) error {
	all := junitSuites{Name: "firedrill"}
	if len(results) > 0 {
		s := junitSuite{Name: "verdicts"}
		rs := append([]*Result(nil), results...)
		SortResults(rs)
		for i := 0; i < len(rs); {
			j := i
			for j < len(rs) && rs[j].Key() == rs[i].Key() {
				j++
			}
			s.add(verdictCase(rs[i:j]))
			i = j
		}
		all.Suites = append(all.Suites, s)
		if cs := checksSuite(rs); cs.Tests > 0 {
			all.Suites = append(all.Suites, cs)
		}
	}
	if c != nil {
		s := junitSuite{Name: "regressions"}
		for _, v := range c.Verdicts {
			tc := junitCase{Classname: "compare." + v.Drill, Name: v.Profile + " verdict",
				SystemOut: text(fmt.Sprintf("base %d/%d passed, head %d/%d passed", v.BasePassed, v.BaseRuns, v.HeadPassed, v.HeadRuns))}
			if v.Regression {
				tc.Failure = &junitMessage{Type: "verdict", Message: fmt.Sprintf("held in base, failed in head (%d of %d runs)", v.HeadRuns-v.HeadPassed, v.HeadRuns),
					Text: strings.Join(v.Failures, "\n")}
			}
			s.add(tc)
		}
		for _, ch := range c.Checks {
			if !ch.Regression && !ch.Changed() {
				continue
			}
			tc := junitCase{Classname: "compare." + ch.Drill, Name: ch.Profile + " " + ch.Kind + " " + ch.Name,
				SystemOut: text(fmt.Sprintf("%s: base %d/%d, head %d/%d", ch.Expr, ch.BaseOK, ch.BaseRuns, ch.HeadOK, ch.HeadRuns))}
			if ch.Regression {
				tc.Failure = &junitMessage{Type: "check", Message: fmt.Sprintf("%s %q came out as required in every base run, not in %d of %d head runs",
					ch.Kind, ch.Name, ch.HeadRuns-ch.HeadOK, ch.HeadRuns), Text: strings.Join(ch.Failures, "\n")}
			}
			s.add(tc)
		}
		for _, m := range c.Metrics {
			tc := junitCase{Classname: "compare." + m.Drill, Name: m.Profile + " " + m.Metric,
				SystemOut: text(fmt.Sprintf("base %s (n=%d), head %s (n=%d), change %s, p %s: %s",
					fmtVal(m.BaseMedian, m.Unit), len(m.Base), fmtVal(m.HeadMedian, m.Unit), len(m.Head), fmtPct(m.Change), pval(m.P), m.Outcome))}
			switch {
			case m.Regression:
				tc.Failure = &junitMessage{Type: "regression",
					Message: fmt.Sprintf("%s got worse by %s (p=%s, tolerance %.1f%%)", m.Metric, fmtPct(math.Abs(m.Change)), pval(m.P), m.Tolerance*100)}
			case m.Significance == CannotTell:
				tc.Skipped = &junitMessage{Message: "cannot tell: " + m.Note}
			}
			s.add(tc)
		}
		all.Suites = append(all.Suites, s)
	}
	for _, s := range all.Suites {
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Skipped += s.Skipped
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	return nil
}

// checksSuite has one case per check of each drill and profile (rs
// sorted), over their runs.
func checksSuite(rs []*Result) junitSuite {
	s := junitSuite{Name: "checks"}
	type key struct{ drill, profile, check string }
	var order []key
	cases := map[key]*junitCase{}
	var failures = map[key][]string{}
	for _, r := range rs {
		for _, ch := range r.Checks {
			k := key{r.Drill, r.Profile, ch.Key()}
			tc := cases[k]
			if tc == nil {
				name := r.Profile + " " + ch.Kind + ": " + ch.Name
				if ch.Incident != "" {
					name += " (" + ch.Incident + ")"
				}
				tc = &junitCase{Classname: "firedrill." + r.Drill, Name: name, SystemOut: text("")}
				cases[k] = tc
				order = append(order, k)
			}
			line := fmt.Sprintf("%s: %s [%s] %s: %s", cmp.Or(r.RunID, "run"), ch.Outcome, ch.Phase, ch.Expr, ch.Values())
			if !ch.Required(r.Verdict.Expected) {
				line += " (for information: this profile's verdict does not depend on it)"
			}
			tc.SystemOut.Text = strings.TrimPrefix(tc.SystemOut.Text+"\n"+line, "\n")
			if ch.Required(r.Verdict.Expected) && !ch.OK() {
				failures[k] = append(failures[k], line)
			}
		}
	}
	for _, k := range order {
		tc := cases[k]
		if f := failures[k]; len(f) > 0 {
			tc.Failure = &junitMessage{Type: "check", Message: f[0], Text: strings.Join(f, "\n")}
		}
		s.add(*tc)
	}
	return s
}

// verdictCase is one drill and profile's verdict over its runs.
func verdictCase(rs []*Result) junitCase {
	r0 := rs[0]
	tc := junitCase{Classname: "firedrill." + r0.Drill, Name: r0.Profile}
	var secs float64
	var out, fails []string
	for _, r := range rs {
		secs += r.Duration()
		line := fmt.Sprintf("%s: expected %s, reached %s", r.RunID, r.Verdict.Expected, r.Verdict.Reached)
		if len(r.Checks) > 0 {
			line += " (" + r.Counts().String() + ")"
		}
		if len(r.Verdict.Observed) > 0 {
			line += "\n  signatures reproduced: " + signatureLines(r)
		}
		out = append(out, line)
		if !r.Verdict.Pass {
			why := fmt.Sprintf("%s: expected %s, reached %s", r.RunID, r.Verdict.Expected, r.Verdict.Reached)
			if r.Verdict.Reason != "" {
				why += ": " + r.Verdict.Reason
			}
			if !r.Complete {
				why += " (incomplete: " + r.IncompleteReason + ")"
			}
			fails = append(fails, why)
		}
	}
	tc.Time = fmt.Sprintf("%.3f", secs)
	tc.SystemOut = text(strings.Join(out, "\n"))
	if len(fails) > 0 {
		tc.Failure = &junitMessage{Type: "verdict", Message: fails[0], Text: strings.Join(fails, "\n")}
		if len(fails) > 1 {
			tc.Failure.Message = fmt.Sprintf("%d of %d runs failed; first: %s", len(fails), len(rs), fails[0])
		}
	}
	return tc
}

// signatureLines lists the observed signatures with the incident lines
// they cite.
func signatureLines(r *Result) string {
	var out []string
	for _, c := range r.Checks {
		if c.Kind == Signature && c.OK() {
			out = append(out, fmt.Sprintf("%s (%s)", c.Name, c.Incident))
		}
	}
	return strings.Join(out, "; ")
}
