package reports

import (
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// CSP is the Content-Security-Policy every report carries: nothing may be
// fetched, only the inline style runs, and the inline SVG needs no source.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

// cspAttr is CSP as a trusted attribute: the template would otherwise
// entity-escape its quotes, which is valid but hard to check for.
const cspAttr = template.HTMLAttr(`content="` + CSP + `"`)

//go:embed report.css
var reportCSS string

//go:embed report.html.tmpl
var reportTmpl string

var tmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"num":   fmtNum,
	"clock": fmtClock,
	"time":  func(t time.Time) string { return fmtTime(t) },
	"css":   func() template.CSS { return template.CSS(reportCSS) },
	"pct":   fmtPct,
	"join":  func(s []string) string { return strings.Join(s, ", ") },
	"val":   fmtVal,
	"pval":  pval,
	"fnum":  func(f *Float) string { return fmtNum(float64(*f)) },
	"get": func(m map[string]float64, k string) float64 {
		if v, ok := m[k]; ok {
			return v
		}
		return math.NaN()
	},
}).Parse(reportTmpl))

// Profile order in reports: the unprotected run shows the incident, the
// protected one shows the fix.
var profileRank = map[string]int{"unprotected": 0, "protected": 1}

// SortResults orders results by drill, profile (unprotected first), start
// time and run id, the order every report shows them in.
func SortResults(rs []*Result) {
	slices.SortStableFunc(rs, func(a, b *Result) int {
		return cmp.Or(
			cmp.Compare(a.Drill, b.Drill),
			cmp.Compare(rank(a.Profile), rank(b.Profile)),
			cmp.Compare(a.Profile, b.Profile),
			a.Start.Compare(b.Start),
			cmp.Compare(a.RunID, b.RunID),
		)
	})
}

func rank(profile string) int {
	if r, ok := profileRank[profile]; ok {
		return r
	}
	return len(profileRank)
}

type reportView struct {
	Title      string
	CSP        template.HTMLAttr
	Generated  string
	Releases   string
	Passed     int
	Failed     int
	Incomplete []*resultView
	Results    []*resultView
	Drills     []*drillView
}

type drillView struct {
	Drill    string
	Incident string
	Results  []*resultView
}

type resultView struct {
	*Result
	Anchor   string
	Label    string
	Charts   []template.HTML
	Windows  []faultWindow
	Markers  []FaultEvent
	Phases   []phaseRow
	PhaseCol []phaseColumn
	Checks   []checkRow
	Counts   string
	Duration float64
}

// checkRow is one check as the report shows it.
type checkRow struct {
	Check
	Required bool   // it decides this profile's verdict
	Class    string // pass-row, fail-row or info-row
	Observed string
	Relative string // "before 3.8" when relative
	Bound    string
}

// phaseColumn is a column of the phase table: a summary key and its label.
type phaseColumn struct{ Key, Label string }

// phaseColumns are the phase statistics the table shows, with readable
// names; a column without data in any phase is left out.
var phaseColumns = []phaseColumn{
	{"duration_s", "length s"}, {"offered_rate", "offered /s"}, {"served_ratio", "served"}, {"failed", "failed"},
	{"shed", "shed"}, {"unsent", "not sent"}, {"fetch_p50", "fetch p50 ms"}, {"fetch_p99", "fetch p99 ms"},
	{"write_p99", "write p99 ms"}, {"lookup_p99", "lookup p99 ms"}, {"request_p99", "request p99 ms"}, {"db_p99", "DB query p99 ms"},
	{"db_rate", "DB queries /s"}, {"db_rate_peak", "DB peak /s"}, {"hit_ratio", "hit ratio"},
	{"error_rate", "errors /s"}, {"connections_peak", "DB conns peak"}, {SummaryRecovery, "recovery s"},
	// The servers' own view.
	{"server_db_user_select_rate", "server: SELECT /s"}, {"server_db_threads_running_peak", "server: DB threads running peak"},
	{"server_mc_cmd_get_rate", "server: mc gets /s"}, {"server_mc_hit_ratio", "server: mc hit ratio"},
	{"server_cpu_rate{container=mysql}", "server: DB CPU cores"},
}

// phaseRow is one phase with its cells in column order.
type phaseRow struct {
	Phase
	Label string
	Cells []string
}

// RenderHTML writes one self-contained HTML report of results: verdicts
// first, then per drill and profile the time series with fault windows, the
// phase summaries and the run's metadata. It fetches nothing when opened.
func RenderHTML(w io.Writer, results []*Result) error {
	if len(results) == 0 {
		return fmt.Errorf("render report: no results")
	}
	rs := slices.Clone(results)
	SortResults(rs)
	v := &reportView{Title: "firedrill report", CSP: cspAttr}
	var end time.Time
	releases := map[string]bool{}
	seen := map[string]int{}
	for _, r := range rs {
		rv := newResultView(r, seen)
		v.Results = append(v.Results, rv)
		if !r.Complete {
			v.Incomplete = append(v.Incomplete, rv)
		}
		if r.Verdict.Pass {
			v.Passed++
		} else {
			v.Failed++
		}
		if r.End.After(end) {
			end = r.End
		}
		releases[cmp.Or(r.Release, "unversioned")] = true
		if n := len(v.Drills); n == 0 || v.Drills[n-1].Drill != r.Drill {
			v.Drills = append(v.Drills, &drillView{Drill: r.Drill, Incident: r.Incident})
		}
		d := v.Drills[len(v.Drills)-1]
		d.Results = append(d.Results, rv)
		d.Incident = cmp.Or(d.Incident, r.Incident)
	}
	// A drill's runs share their axes: "protected stays flat while
	// unprotected collapses" is one picture.
	for _, d := range v.Drills {
		dur := 0.0
		axes := map[string]float64{}
		for _, rv := range d.Results {
			dur = max(dur, rv.Duration)
			for _, c := range resultCharts(rv.Result, rv.Anchor, nil, nil, rv.Duration) {
				axes[c.key] = max(axes[c.key], c.top())
			}
		}
		for _, rv := range d.Results {
			rv.renderCharts(axes, dur)
		}
	}
	// The report's date comes from the runs, not the clock, so rendering the
	// same results twice gives the same bytes.
	if !end.IsZero() {
		v.Generated = fmtTime(end)
	}
	v.Releases = strings.Join(slices.Sorted(maps.Keys(releases)), ", ")
	if err := tmpl.ExecuteTemplate(w, "report", v); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}

func newResultView(r *Result, seen map[string]int) *resultView {
	anchor := slug(r.Drill + "-" + r.Profile)
	seen[anchor]++
	if n := seen[anchor]; n > 1 {
		anchor = fmt.Sprintf("%s-%d", anchor, n)
	}
	rv := &resultView{Result: r, Anchor: anchor, Duration: r.Duration()}
	rv.Label = r.Drill + " · " + r.Profile
	if r.RunID != "" {
		rv.Label += " · " + r.RunID
	}
	rv.Windows = faultWindows(r, rv.Duration)
	for _, e := range r.Events {
		if e.Marker && e.Action == Inject && e.Fault != "traffic" {
			rv.Markers = append(rv.Markers, e)
		}
	}
	rv.Counts = r.Counts().String()
	for _, c := range r.Checks {
		row := checkRow{Check: c, Required: c.Required(r.Verdict.Expected), Observed: "no data"}
		switch {
		case !row.Required:
			row.Class = "info-row"
		case c.OK():
			row.Class = "pass-row"
		default:
			row.Class = "fail-row"
		}
		if c.Observed != nil {
			row.Observed = fmtNum(float64(*c.Observed))
		}
		if c.Reference != nil {
			row.Relative = c.Relative + " " + fmtNum(float64(*c.Reference))
		}
		if c.Bound != nil {
			row.Bound = fmtNum(float64(*c.Bound))
		}
		rv.Checks = append(rv.Checks, row)
	}
	for _, col := range phaseColumns {
		for _, p := range r.Phases {
			if _, ok := p.Summary[col.Key]; ok {
				rv.PhaseCol = append(rv.PhaseCol, col)
				break
			}
		}
	}
	for _, p := range r.Phases {
		row := phaseRow{Phase: p, Label: p.Name}
		if p.Kind == PhaseFault {
			row.Label = "during " + p.Name
		}
		for _, col := range rv.PhaseCol {
			v, ok := p.Summary[col.Key]
			if !ok {
				row.Cells = append(row.Cells, "–")
				continue
			}
			row.Cells = append(row.Cells, fmtNum(float64(v)))
		}
		rv.Phases = append(rv.Phases, row)
	}
	return rv
}

// renderCharts draws a result's charts on the axes shared by its drill.
func (rv *resultView) renderCharts(axes map[string]float64, dur float64) {
	for _, c := range resultCharts(rv.Result, rv.Anchor, rv.Windows, rv.Markers, dur) {
		if c.yMax == 0 {
			c.yMax = axes[c.key]
		}
		var b strings.Builder
		c.render(&b)
		rv.Charts = append(rv.Charts, template.HTML(b.String())) // built by chart.render, which escapes every text
	}
}

// Chart colours: distinguishable in print and for common colour blindness.
var palette = []string{"#0072b2", "#009e73", "#d55e00", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"}

// resultCharts lays out the charts of one result. A chart whose series are
// missing still appears, saying "no data", so the report's shape is stable.
func resultCharts(r *Result, anchor string, ws []faultWindow, marks []FaultEvent, dur float64) []*chart {
	one := func(metric string) *Series {
		ss := r.Find(metric)
		if len(ss) == 0 {
			return nil
		}
		// Prefer the untagged (whole fleet) series over per-server ones.
		best := ss[0]
		for _, s := range ss {
			if len(s.Tags) < len(best.Tags) {
				best = s
			}
		}
		return best
	}
	mk := func(id, title, unit string, yMax float64, specs ...[3]string) *chart {
		c := &chart{key: id, id: anchor + "-" + id, title: title, unit: unit, windows: ws, markers: marks, duration: dur, yMax: yMax}
		for i, sp := range specs {
			if s := one(sp[0]); s != nil {
				c.lines = append(c.lines, line{label: sp[1], color: palette[i%len(palette)], dash: sp[2] == "dash", s: s})
			}
		}
		return c
	}
	// byTag is a chart with one line per value of tag, for the series of
	// metric that carry it.
	byTag := func(id, title, unit, metric, tag string, first int) *chart {
		c := &chart{key: id, id: anchor + "-" + id, title: title, unit: unit, windows: ws, markers: marks, duration: dur}
		var ss []*Series
		for _, s := range r.Find(metric) {
			if s.Tags[tag] != "" || tag == "class" {
				ss = append(ss, s)
			}
		}
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].Tags[tag] < ss[j].Tags[tag] })
		for i, s := range ss {
			c.lines = append(c.lines, line{label: cmp.Or(s.Tags[tag], "all"), color: palette[(i+first)%len(palette)], s: s})
		}
		return c
	}
	// The servers' own counts sit beside the client's view of the same
	// thing; a result that was never sampled (schema 1, a k6-operator
	// merge) has none of these charts rather than empty ones.
	sampled := r.Sampling != nil
	var charts []*chart
	add := func(c *chart, server bool) {
		if !server || sampled {
			charts = append(charts, c)
		}
	}
	// A drill of a service under test has HTTP requests where the engine
	// has operations, by the second each was sent.
	opsTitle, latTitle := "Operations per second (by due time)", "Fetch latency by due time (ms)"
	if len(r.Environment.Apps) > 0 {
		opsTitle, latTitle = "HTTP requests per second (by the second sent)", "HTTP request latency by the second sent (ms)"
	}
	add(mk("ops", opsTitle, "/s", 0,
		[3]string{SeriesOpRate, "offered"}, [3]string{SeriesServedRate, "served"}), false)
	add(mk("latency", latTitle, "ms", 0,
		[3]string{SeriesLatencyP50, "p50"}, [3]string{SeriesLatencyP90, "p90"},
		[3]string{SeriesLatencyP99, "p99"}, [3]string{SeriesLatencyMax, "max"}), false)
	add(mk("hit", "Cache hit ratio", "", 1, [3]string{SeriesHitRatio, "hit ratio"}), false)
	add(mk("mc-server", "Memcached gets per second (its own stats)", "/s", 0,
		[3]string{SeriesServerMCGets, "get"}, [3]string{SeriesServerMCHits, "hits"},
		[3]string{SeriesServerMCMisses, "misses"}, [3]string{SeriesServerMCExpired, "expired"}), true)
	add(mk("dbq", "Database queries per second", "/s", 0, [3]string{SeriesDBQueryRate, "queries/s"}), false)
	add(mk("db-server", "Database statements per second (its own count)", "/s", 0,
		[3]string{SeriesServerDBUserSelect, "traffic SELECT"}, [3]string{SeriesServerDBUserUpdate, "traffic UPDATE"},
		[3]string{SeriesServerDBQuestions, "all statements", "dash"}), true)
	add(mk("conn", "Database connections vs the cap", "", 0,
		[3]string{SeriesConnections, "connections"}, [3]string{SeriesConnCap, "cap", "dash"}), false)
	add(mk("db-threads", "Database threads (its own count)", "", 0,
		[3]string{SeriesServerDBThreadsConn, "connected"}, [3]string{SeriesServerDBThreadsRunning, "running"},
		[3]string{SeriesConnCap, "cap", "dash"}), true)
	add(byTag("errors", "Errors per second by class", "/s", SeriesErrorRate, "class", 2), false)
	add(byTag("cpu", "CPU per container (cores used)", "cores", SeriesServerCPU, "container", 0), true)
	add(byTag("mem", "Memory per container (MiB)", "MiB", SeriesServerMem, "container", 0), true)
	return charts
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func fmtPct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if math.IsInf(v, 0) {
		return "new"
	}
	return fmt.Sprintf("%+.1f%%", v*100)
}
