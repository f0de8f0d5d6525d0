package reports

import (
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"
)

// FidelityRow is one line of the fidelity table: a check that declares
// the incident's own figure, beside what one run of the drill measured.
type FidelityRow struct {
	Drill    string
	Incident string // the report's file and line the check cites, if any
	Profile  string
	Verdict  string // the run's verdict, "held" or "broken" (reached)
	Check    string
	Figure   string // the incident's figure, as the drill declares it
	Measured string // the drill's figure, as the check measured it
	Outcome  string
	Release  string // the run's release label
	Day      string // the day the run started, UTC (2006-01-02)
}

// Fidelity lists, for every result, each check that declares an incident
// figure and that the profile's verdict rests on (the signatures of a
// profile that must break, the steady states of one that must hold), in
// drill then profile order (unprotected first). Results of one
// drill and profile repeated appear once each, in the order given.
func Fidelity(results []*Result) []FidelityRow {
	rs := slices.Clone(results)
	slices.SortStableFunc(rs, func(a, b *Result) int {
		if c := strings.Compare(a.Drill, b.Drill); c != 0 {
			return c
		}
		return strings.Compare(profileOrder(a.Profile), profileOrder(b.Profile))
	})
	var rows []FidelityRow
	for _, r := range rs {
		for _, c := range r.Checks {
			// the checks the profile's verdict rests on: a profile that
			// must break, its signatures; one that must hold, the rest
			if c.Figure == "" || (c.Kind == Signature) != (r.Verdict.Expected == Broken) {
				continue
			}
			rows = append(rows, FidelityRow{
				Drill: r.Drill, Incident: c.Incident, Profile: r.Profile, Verdict: r.Verdict.Reached,
				Check: c.Name, Figure: c.Figure, Measured: Measured(c), Outcome: c.Outcome,
				Release: r.Release, Day: day(r),
			})
		}
	}
	return rows
}

func day(r *Result) string {
	if r.Start.IsZero() {
		return ""
	}
	return r.Start.UTC().Format("2006-01-02")
}

// profileOrder sorts "unprotected" before "protected" before the rest.
func profileOrder(p string) string {
	switch p {
	case "unprotected":
		return "0"
	case "protected":
		return "1"
	}
	return "2" + p
}

// Measured says what a check measured in the drill's own terms: the
// metric's value in its phase and, for a bound relative to another phase,
// that value as a multiple of the reference ("db_rate_peak 261 = 23.6 x
// db_rate@before 11.05").
func Measured(c Check) string {
	metric := strings.TrimSpace(c.Expr)
	if m := metricRE.FindString(metric); m != "" {
		metric = strings.TrimSpace(m)
	}
	if c.Observed == nil || math.IsNaN(float64(*c.Observed)) {
		return metric + ": no data in " + c.Phase
	}
	obs := *c.Observed
	s := fmt.Sprintf("%s %s", metric, sig(obs))
	if c.Reference == nil || c.Relative == "" {
		return s + " in " + c.Phase
	}
	ref := *c.Reference
	rel := c.Relative
	if !strings.Contains(rel, "@") {
		rel = metric + "@" + rel
	}
	if float64(ref) == 0 || math.IsNaN(float64(ref)) || math.IsInf(float64(ref), 0) {
		return fmt.Sprintf("%s in %s, %s %s", s, c.Phase, rel, sig(ref))
	}
	ratio := float64(obs) / float64(ref)
	if ratio > 0 && ratio < 0.5 {
		// a cut reads as one: "1/18.1 of" rather than "0.0552 x"
		return fmt.Sprintf("%s in %s = 1/%s of %s %s", s, c.Phase, sig(Float(1/ratio)), rel, sig(ref))
	}
	return fmt.Sprintf("%s in %s = %s x %s %s", s, c.Phase, sig(Float(ratio)), rel, sig(ref))
}

// metricRE is an expression's metric and tag selector, before its
// operator (a selector holds "=").
var metricRE = regexp.MustCompile(`^\s*[a-z][a-z0-9_]*\s*(\{[^}]*\})?`)

// sig rounds to three significant figures for reading, not for judging.
func sig(f Float) string {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) || v == math.Trunc(v) && math.Abs(v) < 1e6 {
		return f.String()
	}
	d := 2 - int(math.Floor(math.Log10(math.Abs(v))))
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%.*f", d, v)
}

// WriteFidelity writes the rows as a Markdown table, the form the README
// carries.
func WriteFidelity(w io.Writer, rows []FidelityRow) error {
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	var b strings.Builder
	b.WriteString(provenance(rows) + "\n\n")
	b.WriteString("| drill | profile (verdict) | check | the incident | the drill measured | outcome |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range rows {
		incident := esc(r.Figure)
		if r.Incident != "" {
			incident += " (" + r.Incident + ")"
		}
		fmt.Fprintf(&b, "| %s | %s (%s) | %s | %s | %s | %s |\n",
			esc(r.Drill), esc(r.Profile), esc(r.Verdict), esc(r.Check), incident, esc(r.Measured), esc(r.Outcome))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// provenance says which runs the table comes from: their releases and
// the days they ran.
func provenance(rows []FidelityRow) string {
	var rels, days []string
	for _, r := range rows {
		if r.Release != "" && !slices.Contains(rels, r.Release) {
			rels = append(rels, r.Release)
		}
		if d := r.Day; d != "" && !slices.Contains(days, d) {
			days = append(days, d)
		}
	}
	slices.Sort(days)
	s := fmt.Sprintf("From %d checks in runs", len(rows))
	if len(rels) > 0 {
		s += " of release " + strings.Join(rels, ", ")
	}
	if len(days) > 0 {
		s += ", " + days[0]
		if len(days) > 1 {
			s += " to " + days[len(days)-1]
		}
	}
	return s + " (`firedrill fidelity`)."
}

// Fidelity table markers: ReplaceFidelity rewrites what lies between them.
const (
	FidelityBegin = "<!-- fidelity:begin -->"
	FidelityEnd   = "<!-- fidelity:end -->"
)

// ReplaceFidelity returns doc with the text between the fidelity markers
// replaced by table; doc must hold each marker once, in order.
func ReplaceFidelity(doc, table string) (string, error) {
	b := strings.Index(doc, FidelityBegin)
	e := strings.Index(doc, FidelityEnd)
	switch {
	case b < 0 || e < 0:
		return "", fmt.Errorf("no fidelity table markers: put %s and %s, each on a line of its own, where the table goes", FidelityBegin, FidelityEnd)
	case strings.Count(doc, FidelityBegin) > 1 || strings.Count(doc, FidelityEnd) > 1:
		return "", fmt.Errorf("the fidelity table markers appear more than once: keep one %s and one %s", FidelityBegin, FidelityEnd)
	case e < b:
		return "", fmt.Errorf("%s comes before %s: swap them", FidelityEnd, FidelityBegin)
	}
	return doc[:b+len(FidelityBegin)] + "\n" + table + doc[e:], nil
}
