// Package reports holds firedrill's result schema, the HTML report and the
// comparison of results across releases.
package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is the version of the result.json schema written by this
// build. Bump it on any change that an older reader would misread.
//
// Version 2: checks (precondition, signature, steady state) decide the
// verdict, which may be partial or invalid; time zero is the start of
// traffic; phases carry exact statistics (Phase.Summary) and a kind. Version
// 1 files (verdicts from k6 thresholds) are still read.
const SchemaVersion = 2

// Verdicts. A profile declared broken must reproduce every signature of its
// incident; a profile declared held must keep every steady state.
const (
	// Held: no signature observed, every steady state kept.
	Held = "held"
	// Broken: every signature observed (the incident reproduced); for a
	// profile declared held, a steady state that failed.
	Broken = "broken"
	// Partial: some signatures observed, not all.
	Partial = "partial"
	// Invalid: a precondition failed (no traffic, a fault never injected
	// or never removed, a cold cache): the run proves nothing.
	Invalid = "invalid"
	// Error: the run could not decide (setup failure, script error, crash,
	// interrupt).
	Error = "error"
)

// Verdicts lists every verdict.
var Verdicts = []string{Held, Broken, Partial, Invalid, Error}

// Well-known series metric names. Series may carry more; the report draws
// these.
const (
	SeriesOpRate       = "op_rate"           // operations offered per second (by due time)
	SeriesServedRate   = "served_rate"       // operations served (fresh or stale) per second, by due time
	SeriesLatencyP50   = "latency_p50_ms"    // fetch latency percentiles, ms
	SeriesLatencyP90   = "latency_p90_ms"    //
	SeriesLatencyP99   = "latency_p99_ms"    //
	SeriesLatencyMax   = "latency_max_ms"    //
	SeriesHitRatio     = "hit_ratio"         // cache hits / (hits + misses)
	SeriesDBQueryRate  = "db_query_rate"     // database queries per second
	SeriesDBLatencyP99 = "db_latency_p99_ms" // database query latency p99, ms
	SeriesConnections  = "db_connections"    // open database connections
	SeriesConnCap      = "db_connection_cap" // the database's max_connections
	SeriesErrorRate    = "error_rate"        // errors per second, tagged class=...
)

// Series of the servers' own counters the report draws (schema 2, with a
// sampler; see the README's table of check metrics for every one). A
// counter's series is its count in each second (NAME_rate), a gauge's its
// value; memcached's are per server (tag server=memcached-i) and summed
// over the servers (untagged), CPU and memory per container (tag
// container=mysql, memcached-i, toxiproxy).
const (
	SeriesServerDBUserSelect     = "server_db_user_select_rate"  // the traffic user's SELECTs per second
	SeriesServerDBUserUpdate     = "server_db_user_update_rate"  // the traffic user's UPDATEs per second
	SeriesServerDBQuestions      = "server_db_questions_rate"    // every statement the database received, per second
	SeriesServerDBThreadsRunning = "server_db_threads_running"   // statements running
	SeriesServerDBThreadsConn    = "server_db_threads_connected" // connections open
	SeriesServerDBMaxConnErrors  = "server_db_max_conn_errors_rate"
	SeriesServerMCGets           = "server_mc_cmd_get_rate" // keys asked of memcached per second
	SeriesServerMCHits           = "server_mc_get_hits_rate"
	SeriesServerMCMisses         = "server_mc_get_misses_rate"
	SeriesServerMCExpired        = "server_mc_get_expired_rate"
	SeriesServerCPU              = "server_cpu_rate" // cores a container used
	SeriesServerMem              = "server_mem_mb"   // a container's memory, MiB
)

// Well-known keys of Phase.Summary and Result.Histograms that comparison
// reads.
const (
	// SummaryRecovery is the seconds from a fault's removal until the
	// hypothesis held again. JSON has no infinity, so a metastable run that
	// never recovered leaves the key out and sets SummaryRecovered to 0.
	SummaryRecovery  = "recovery_s"
	SummaryRecovered = "recovered" // 1 when the system recovered, 0 when it stayed down
	// HistLatency is the whole-run fetch latency histogram.
	HistLatency = "fetch"
	// HistHTTP is the latency histogram of a drill's HTTP requests to a
	// service under test (k6/http), by the time each was sent.
	HistHTTP = "http"
)

// Fault event actions.
const (
	Inject = "inject"
	Remove = "remove"
)

// Result is one run of one drill in one profile: what result.json holds.
type Result struct {
	SchemaVersion int    `json:"schema_version"`
	RunID         string `json:"run_id"`
	Drill         string `json:"drill"`
	Incident      string `json:"incident,omitempty"` // the incident report file it reproduces
	Profile       string `json:"profile"`            // "unprotected" or "protected"
	Release       string `json:"release"`            // release label of the system under test
	Harness       string `json:"harness_version"`    // firedrill's own version

	// Complete is false when the run crashed, was interrupted or timed out;
	// IncompleteReason says why. Such a result is still written.
	Complete         bool   `json:"complete"`
	IncompleteReason string `json:"incomplete_reason,omitempty"`

	Start time.Time `json:"start"`
	End   time.Time `json:"end"`

	Environment Environment       `json:"environment"`
	Parameters  map[string]string `json:"parameters"` // every drill parameter, as passed to k6
	Seed        int64             `json:"seed"`

	Events     []FaultEvent         `json:"events"`             // faults and markers, from the start of traffic
	Series     []Series             `json:"series"`             // 1 s time series from the start of traffic
	Phases     []Phase              `json:"phases"`             // exact statistics before, during and after faults
	Checks     []Check              `json:"checks,omitempty"`   // the drill's checks, judged: they decide the verdict
	Recovery   *Recovery            `json:"recovery,omitempty"` // recovery after a trigger, when the drill asks
	Thresholds []Threshold          `json:"thresholds"`         // k6's own thresholds, for k6 users; not the verdict
	Verdict    Verdict              `json:"verdict"`
	Histograms map[string]Histogram `json:"histograms,omitempty"` // whole-run latency, mergeable
	// Sampling is how the servers' own counters were read, when they were.
	Sampling *Sampling `json:"sampling,omitempty"`
}

// Sampling describes the readings of the servers' own counters (database
// status, memcached stats, container CPU and memory) behind a result's
// server_* series and phase statistics.
type Sampling struct {
	Interval float64 `json:"interval"` // seconds between readings of a source
	// DBUserCounts is how the traffic user's statements were counted:
	// "user_statistics" (MariaDB), "performance_schema" (MySQL) or "none"
	// (global counters only, which include the harness's own statements).
	DBUserCounts string           `json:"db_user_counts"`
	Note         string           `json:"note,omitempty"` // what the database source read
	RunS         int              `json:"run_s"`          // seconds of traffic the coverage is judged over
	Sources      []SourceCoverage `json:"sources"`
}

// SourceCoverage is how well one source was read over the run.
type SourceCoverage struct {
	Source     string `json:"source"`   // db, memcached-i, container:SERVICE
	Readings   int    `json:"readings"` // during the run
	MissingS   int    `json:"missing_s"`
	Errors     int    `json:"errors,omitempty"` // failed readings, set-up included
	FirstError string `json:"first_error,omitempty"`
}

// Environment describes what the drill ran against.
type Environment struct {
	Images         map[string]string `json:"images"`          // service -> image reference
	ServerVersions map[string]string `json:"server_versions"` // service -> version it reported
	Memcached      int               `json:"memcached"`       // number of memcached servers
	DBFlavor       string            `json:"db_flavor"`       // "mariadb" or "mysql"
	Generators     int               `json:"generators"`      // k6 processes that drove load
	Host           string            `json:"host,omitempty"`
	// DBCPUs is the database container's CPU quota in cores (0: none).
	DBCPUs float64 `json:"db_cpus,omitempty"`
	// DBArgs are the server options the database started with beyond the
	// image's (a drill's @db, a caller's).
	DBArgs []string `json:"db_args,omitempty"`
	// Route is how the load generator reached Toxiproxy: "network" (its
	// address on the run's network) or "published" (its ports on
	// 127.0.0.1, through docker-proxy, which costs the host CPU).
	Route string `json:"route,omitempty"`
	// DBCapacity is the fills a second the database served when the drill
	// calibrated it (cache.calibrate), 0 when it did not: the machine's
	// speed, which the drill's load is a share of.
	DBCapacity float64 `json:"db_capacity_fills_per_s,omitempty"`
	// Apps are the releases of the service under test (none for a drill
	// of firedrill's own traffic engine).
	Apps []App `json:"apps,omitempty"`
}

// App is one release of the service under test in a run.
type App struct {
	Name    string `json:"name"`  // "app", or "base" and "head" side by side
	Image   string `json:"image"` // as given
	ImageID string `json:"image_id,omitempty"`
	Port    int    `json:"port"`
	Health  string `json:"health,omitempty"`
	Metrics string `json:"metrics,omitempty"`
	// Env are the names of the variables it was given (values may hold
	// credentials; the run folder's app-NAME.log has what it printed).
	Env []string `json:"env,omitempty"`
}

// FaultEvent is one injection or removal of a fault, or a marker (a step or
// protection: drawn on the timeline, never a phase), at an offset from the
// start of traffic (0 for what a drill set up before it).
type FaultEvent struct {
	At     float64           `json:"at"`     // seconds since the start of traffic
	Fault  string            `json:"fault"`  // e.g. "latency", "partition", "hot_set_expiry"
	Action string            `json:"action"` // "inject" or "remove"
	Target string            `json:"target"` // proxy, server or schema it hit
	Name   string            `json:"name,omitempty"`
	Marker bool              `json:"marker,omitempty"`
	Attrs  map[string]string `json:"attrs,omitempty"`
}

// Series is one metric at a fixed step from Result.Start. A missing value is
// NaN in memory and null in JSON.
type Series struct {
	Metric string            `json:"metric"`
	Unit   string            `json:"unit"`
	Tags   map[string]string `json:"tags,omitempty"`
	Step   float64           `json:"step"` // seconds between values; 1 by default
	Values []Float           `json:"values"`
}

// Phase kinds.
const (
	PhaseWarmup = "warmup" // traffic filling the cache, not judged
	PhaseBefore = "before" // steady traffic before the first fault
	PhaseFault  = "fault"  // while one fault was in place
	PhaseAfter  = "after"  // after the last fault was removed
	PhaseWindow = "window" // a window the drill declares (e.g. +10 s to +40 s after a removal)
	PhaseRun    = "run"    // the whole run, warm-up excluded
)

// Phase is a window of the run, such as "before", a fault's window
// ("latency"), "after", with its exact statistics: latencies are
// attributed to the phase their operation arrived in.
type Phase struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind,omitempty"`
	Targets []string `json:"targets,omitempty"` // a fault phase's targets
	From    float64  `json:"from"`              // seconds since the start of traffic
	To      float64  `json:"to"`
	// Summary is the phase's statistics by name (the metrics checks use:
	// fetch_p99, served_ratio, db_rate_peak, ...).
	Summary    map[string]Float     `json:"summary"`
	Histograms map[string]Histogram `json:"histograms,omitempty"`
}

// Recovery is the harness's judgement of recovery after a trigger, by the
// rule of the metastability literature: the first window of Window seconds,
// starting at least Settle seconds after the trigger's removal, whose mean
// fetch latency is at most LatencyFactor x the before phase's plus
// LatencySlackMs (the host's noise floor the drill declared) and whose
// unserved share is at most ErrorBudget; watched to the end of the run, a
// later unhealthy window is a relapse and the run is not recovered.
type Recovery struct {
	After         string  `json:"after"`  // the trigger's phase
	Window        float64 `json:"window"` // seconds
	Settle        float64 `json:"settle"`
	LatencyFactor float64 `json:"latency_factor"`
	// LatencySlackMs is added to the bound: the noise floor of a mean
	// latency on the host, when the drill declares one.
	LatencySlackMs float64 `json:"latency_slack_ms,omitempty"`
	// NoiseSigmas widens the bound by that many standard errors of the
	// difference of the two means, when the drill declares it.
	NoiseSigmas float64 `json:"noise_sigmas,omitempty"`
	ErrorBudget float64 `json:"error_budget"`
	RemovedAt   float64 `json:"removed_at"` // seconds since the start of traffic
	// Reference is the phase whose mean latency is the healthy one
	// (before, unless the drill names a window), BeforeMeanMs that mean.
	Reference    string `json:"reference,omitempty"`
	BeforeMeanMs Float  `json:"before_mean_ms"`
	Recovered    bool   `json:"recovered"`
	// RecoveryS is the time from the removal to the start of the first
	// healthy window; RelapseS to the start of a later unhealthy one.
	RecoveryS *Float `json:"recovery_s,omitempty"`
	RelapseS  *Float `json:"relapse_s,omitempty"`
	// Judged is the window that decided: the first healthy one, the one
	// that relapsed, or, when none was healthy, the last one judged.
	Judged *RecoveryWindow `json:"judged,omitempty"`
	Note   string          `json:"note,omitempty"`
}

// RecoveryWindow is one window of the recovery rule, from and to in
// seconds after the trigger's removal: its mean fetch latency against the
// band it had to stay within, and the share of its operations not served.
type RecoveryWindow struct {
	FromS    Float `json:"from_s"`
	ToS      Float `json:"to_s"`
	MeanMs   Float `json:"mean_ms,omitempty"`
	BandMs   Float `json:"band_ms,omitempty"`
	Unserved Float `json:"unserved"`
}

// Threshold is one k6 threshold expression and its outcome.
type Threshold struct {
	Metric     string `json:"metric"`
	Expression string `json:"expression"`
	OK         bool   `json:"ok"`
	// Value is what the run measured for the expression's aggregate (such as
	// the max for "max<500"), when the harness knows it.
	Value *Float `json:"value,omitempty"`
}

// Verdict is what the drill declared for this profile and what the run
// reached. Pass is Expected == Reached.
type Verdict struct {
	Expected string `json:"expected"`
	Reached  string `json:"reached"`
	Pass     bool   `json:"pass"`
	Reason   string `json:"reason,omitempty"`
	// Observed and NotObserved name the signature checks of the run.
	Observed    []string `json:"observed,omitempty"`
	NotObserved []string `json:"not_observed,omitempty"`
}

// Histogram is an HDR histogram encoded with hdrhistogram-go's Encode (V2
// compressed, base64), so histograms of several runs or generators merge
// exactly.
type Histogram struct {
	Unit    string `json:"unit"` // unit of recorded values, e.g. "us"
	Encoded string `json:"encoded"`
}

// Float is a float64 whose NaN is written as JSON null and whose
// infinities as the strings "+Inf" and "-Inf" (a latency percentile that
// falls on operations that never finished is +Inf).
type Float float64

// NaN is a missing value in a series.
func NaN() Float { return Float(math.NaN()) }

// String formats f as the shortest decimal that reads back as f; NaN is
// "–" (no data) and infinities "+Inf" and "-Inf".
func (f Float) String() string {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return "–"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// MarshalJSON writes null for NaN, "+Inf" and "-Inf" for infinities.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte("null"), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON reads null as NaN.
func (f *Float) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null":
		*f = NaN()
		return nil
	case `"+Inf"`:
		*f = Float(math.Inf(1))
		return nil
	case `"-Inf"`:
		*f = Float(math.Inf(-1))
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = Float(v)
	return nil
}

// WriteResult writes r to path atomically: a reader sees the old file or the
// whole new one, never half of it.
func WriteResult(path string, r *Result) error {
	if r.SchemaVersion == 0 {
		r.SchemaVersion = SchemaVersion
	}
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	return WriteFileAtomic(path, append(b, '\n'))
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ErrSchema reports a result file of a schema version this build cannot read.
var ErrSchema = errors.New("unsupported result schema version")

// ReadResult reads and validates a result file. Errors name the file and
// what is wrong with it.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	return DecodeResult(path, b)
}

// DecodeResult parses and validates result JSON; name is used in errors.
func DecodeResult(name string, b []byte) (*Result, error) {
	var probe struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%s: not a firedrill result (invalid JSON: %v)", name, err)
	}
	if probe.SchemaVersion == nil {
		return nil, fmt.Errorf("%s: not a firedrill result (no schema_version field)", name)
	}
	if *probe.SchemaVersion != SchemaVersion && *probe.SchemaVersion != 1 {
		return nil, fmt.Errorf("%s: %w %d (this firedrill reads version %d; re-render it with the firedrill that wrote it)",
			name, ErrSchema, *probe.SchemaVersion, SchemaVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Result
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: malformed result: %v", name, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &r, nil
}

// Validate checks the fields every reader relies on.
func (r *Result) Validate() error {
	switch {
	case r.Drill == "":
		return errors.New("malformed result: drill is empty")
	case r.Profile == "":
		return errors.New("malformed result: profile is empty")
	case r.Start.IsZero():
		return errors.New("malformed result: start time is missing")
	}
	for i, s := range r.Series {
		if s.Metric == "" {
			return fmt.Errorf("malformed result: series %d has no metric name", i)
		}
		if s.Step < 0 {
			return fmt.Errorf("malformed result: series %q has a negative step", s.Metric)
		}
	}
	for i, e := range r.Events {
		if e.Action != Inject && e.Action != Remove {
			return fmt.Errorf("malformed result: event %d (%s) has action %q (want %s or %s)", i, e.Fault, e.Action, Inject, Remove)
		}
		if math.IsNaN(e.At) || e.At < 0 {
			return fmt.Errorf("malformed result: event %d (%s) has a negative time", i, e.Fault)
		}
	}
	for name, h := range r.Histograms {
		if h.Encoded == "" {
			return fmt.Errorf("malformed result: histogram %q is empty", name)
		}
	}
	for _, v := range []string{r.Verdict.Reached, r.Verdict.Expected} {
		if v != "" && !slices.Contains(Verdicts, v) {
			return fmt.Errorf("malformed result: unknown verdict %q (want one of %s)", v, strings.Join(Verdicts, ", "))
		}
	}
	for i, c := range r.Checks {
		if !slices.Contains(CheckKinds, c.Kind) {
			return fmt.Errorf("malformed result: check %d (%s) has kind %q (want one of %s)", i, c.Name, c.Kind, strings.Join(CheckKinds, ", "))
		}
		switch c.Outcome {
		case Pass, Fail, Observed, NotObserved:
		default:
			return fmt.Errorf("malformed result: check %d (%s) has outcome %q", i, c.Name, c.Outcome)
		}
	}
	return nil
}

// Key identifies the drill and profile a result belongs to; repeats of one
// drill in one profile share a key.
func (r *Result) Key() string { return r.Drill + "/" + r.Profile }

// Duration is the run's length in seconds: End-Start when both are set,
// otherwise the longest series.
func (r *Result) Duration() float64 {
	if !r.End.IsZero() && r.End.After(r.Start) {
		return r.End.Sub(r.Start).Seconds()
	}
	var d float64
	for _, s := range r.Series {
		if l := float64(len(s.Values)) * s.step(); l > d {
			d = l
		}
	}
	return d
}

// Find returns the series of metric whose tags include every tag in tags
// (key=value pairs), in the order the result holds them.
func (r *Result) Find(metric string, tags ...string) []*Series {
	var out []*Series
next:
	for i := range r.Series {
		s := &r.Series[i]
		if s.Metric != metric {
			continue
		}
		for j := 0; j+1 < len(tags); j += 2 {
			if s.Tags[tags[j]] != tags[j+1] {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// step is Step with the documented default of 1 s.
func (s *Series) step() float64 {
	if s.Step > 0 {
		return s.Step
	}
	return 1
}

// openFault says whether the fault of phase p was never removed: its
// window runs to the end of the run and no removal of its kind follows.
func (r *Result) openFault(p Phase) bool {
	for _, e := range r.Events {
		if !e.Marker && e.Fault == strings.SplitN(p.Name, ":", 2)[0] && e.Action == Remove && e.At >= p.From {
			return false
		}
	}
	return true
}
