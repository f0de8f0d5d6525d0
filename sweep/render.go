package sweep

import (
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"strings"
	"text/tabwriter"
)

// outcomeText is a cell's outcome in a few words: the recovery rule's
// judgement where the drill watches recovery, else the verdict reached.
func outcomeText(c Cell) string {
	switch {
	case !c.Done() && c.Error != "":
		return "error"
	case !c.Done():
		return "not run"
	case c.Recovered != nil && *c.Recovered && c.RecoveryS != nil:
		return fmt.Sprintf("recovered %.0fs", *c.RecoveryS)
	case c.Recovered != nil && *c.Recovered:
		return "recovered"
	case c.Recovered != nil:
		return "stayed down"
	}
	return c.Verdict
}

// class colours a cell on the map.
func class(c Cell) string {
	switch {
	case !c.Done():
		return "none"
	case c.Verdict == "invalid":
		return "invalid"
	case c.Recovered != nil && !*c.Recovered:
		return "down"
	case c.Recovered != nil && c.RecoveryS != nil && *c.RecoveryS > 20:
		return "slow"
	case c.Recovered != nil:
		return "up"
	case c.Verdict == "held":
		return "up"
	case c.Verdict == "partial":
		return "slow"
	}
	return "down"
}

func details(c Cell) string {
	var parts []string
	if c.DBRatePeak != nil {
		parts = append(parts, fmt.Sprintf("DB peak %.0f/s", *c.DBRatePeak))
	}
	if c.ServedAfter != nil {
		parts = append(parts, fmt.Sprintf("served %.2f after", *c.ServedAfter))
	}
	if c.LoadShare != nil {
		parts = append(parts, "load "+share(*c.LoadShare))
	}
	return strings.Join(parts, ", ")
}

func share(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%.1fx capacity", v)
	}
	return fmt.Sprintf("%.0f%% of capacity", math.Round(v*100))
}

// table is one grid of the map: rows by the first axis, columns by the
// second (one column when there is one axis), for one profile and one
// value of every further axis.
type table struct {
	Title      string
	RowName    string
	ColName    string
	Cols       []string
	Rows       []row
	HasColumns bool
}

type row struct {
	Value string
	Cells [][]Cell // per column, the repeats
}

func tables(s *Sweep) []table {
	byKey := map[string]Cell{}
	for _, c := range s.Cells {
		byKey[c.key()] = c
	}
	var rest []Axis
	if len(s.Axes) > 2 {
		rest = s.Axes[2:]
	}
	var out []table
	for _, p := range s.Profiles {
		for _, fixed := range Points(rest) {
			t := table{Title: p, RowName: s.Axes[0].Name, Cols: []string{""}}
			if len(fixed) > 0 {
				t.Title += " — " + describe(rest, fixed)
			}
			if len(s.Axes) > 1 {
				t.ColName, t.Cols, t.HasColumns = s.Axes[1].Name, s.Axes[1].Values, true
			}
			for _, rv := range s.Axes[0].Values {
				r := row{Value: rv}
				for _, cv := range t.Cols {
					pt := maps.Clone(fixed)
					pt[s.Axes[0].Name] = rv
					if t.HasColumns {
						pt[s.Axes[1].Name] = cv
					}
					var reps []Cell
					for rep := 1; rep <= s.Repeats; rep++ {
						c, ok := byKey[cellKey(pt, p, rep)]
						if !ok {
							c = Cell{Params: pt, Profile: p, Repeat: rep}
						}
						reps = append(reps, c)
					}
					r.Cells = append(r.Cells, reps)
				}
				t.Rows = append(t.Rows, r)
			}
			out = append(out, t)
		}
	}
	return out
}

// WriteText writes the map as text tables, one per profile (and value of
// any axis past the second).
func WriteText(w io.Writer, s *Sweep) {
	fmt.Fprintf(w, "sweep of %s: %s", s.Drill, axesText(s.Axes))
	if len(s.Set) > 0 {
		fmt.Fprintf(w, " (--set %v)", s.Set)
	}
	if s.Short {
		fmt.Fprint(w, ", short form")
	}
	fmt.Fprintln(w)
	if s.Capacity > 0 {
		fmt.Fprintf(w, "database capacity %.0f fills/s (measured by the first run); load = offered operations/s before the trigger over it\n", s.Capacity)
	}
	for _, t := range tables(s) {
		fmt.Fprintf(w, "\n%s\n", t.Title)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		head := t.RowName
		if t.HasColumns {
			head += ` \ ` + t.ColName
			for _, c := range t.Cols {
				head += "\t" + c
			}
		} else {
			head += "\toutcome"
		}
		fmt.Fprintln(tw, head)
		for _, r := range t.Rows {
			line := r.Value
			for _, reps := range r.Cells {
				var parts []string
				for _, c := range reps {
					txt := outcomeText(c)
					if d := details(c); d != "" {
						txt += " (" + d + ")"
					}
					parts = append(parts, txt)
				}
				line += "\t" + strings.Join(parts, " / ")
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
	}
	if !s.Complete {
		fmt.Fprintln(w, "\n(incomplete: run the same command again to run the cells left)")
	}
}

var page = template.Must(template.New("sweep").Funcs(template.FuncMap{
	"outcome": outcomeText, "class": class, "details": details,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sweep of {{.S.Drill}}</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0 0 2em}
th,td{border:1px solid #ccc;padding:6px 10px;text-align:center;vertical-align:top}
th{background:#f4f4f4}
a.cell{display:block;color:inherit;text-decoration:none;padding:2px 4px;margin:2px 0;border-radius:3px}
a.cell small{display:block;color:#444}
.up{background:#b9e4b0}.slow{background:#f3e3a0}.down{background:#f2a8a0}.invalid{background:#ddd}.none{background:#fff;color:#999}
.legend span{display:inline-block;padding:2px 8px;margin-right:6px;border-radius:3px}
</style></head><body>
<h1>sweep of {{.S.Drill}}</h1>
<p>{{.Axes}}{{if .S.Short}}, short form{{end}}{{if .S.Set}}; --set {{.S.Set}}{{end}}.
{{if .S.Capacity}}Database capacity {{printf "%.0f" .S.Capacity}} fills/s, measured by the first run; a cell's load is the offered operations/s before the trigger over it.{{end}}
Each cell links to its run's report.{{if not .S.Complete}} <b>Incomplete</b>: run the same command again to run the cells left.{{end}}</p>
<p class="legend"><span class="up">recovered (or held)</span><span class="slow">recovered after more than 20 s (or partial)</span><span class="down">stayed down (or broken)</span><span class="invalid">invalid</span><span class="none">not run</span></p>
{{range .Tables}}<h2>{{.Title}}</h2>
<table><tr><th>{{.RowName}}{{if .HasColumns}} \ {{.ColName}}{{end}}</th>{{if .HasColumns}}{{range .Cols}}<th>{{.}}</th>{{end}}{{else}}<th>outcome</th>{{end}}</tr>
{{range .Rows}}<tr><th>{{.Value}}</th>{{range .Cells}}<td>{{range .}}<a class="cell {{class .}}"{{if .Report}} href="{{.Report}}"{{end}} title="{{.Profile}} repeat {{.Repeat}}{{if .Error}}: {{.Error}}{{end}}">{{outcome .}}<small>{{details .}}</small></a>{{end}}</td>{{end}}</tr>
{{end}}</table>
{{end}}</body></html>
`))

// WriteHTML writes the map: one grid per profile, each cell coloured by
// outcome and linked to its run's report.
func WriteHTML(w io.Writer, s *Sweep) error {
	return page.Execute(w, struct {
		S      *Sweep
		Axes   string
		Tables []table
	}{s, axesText(s.Axes), tables(s)})
}
