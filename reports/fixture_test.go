package reports

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// fixtureStart is fixed so rendered output is byte-for-byte stable.
var fixtureStart = time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)

var fixtureDrills = []string{"cache-format-flip", "hot-key-expiry", "connection-storm", "ddl-storm", "plan-regression", "unreachable-dependency"}

// fixture builds a plausible result of drill in profile, secs seconds long
// at 1 s, with a fault from a third to two thirds of the run. scale shifts
// its latency (to make a head worse than a base).
func fixture(drill, profile string, secs int, seed uint64, scale float64) *Result {
	rng := rand.New(rand.NewPCG(seed, uint64(len(drill))))
	from, to := float64(secs/3), float64(2*secs/3)
	protected := profile == "protected"
	series := func(metric, unit string, f func(t float64) float64, tags ...string) Series {
		s := Series{Metric: metric, Unit: unit, Step: 1, Values: make([]Float, secs)}
		if len(tags) > 0 {
			s.Tags = map[string]string{}
			for i := 0; i+1 < len(tags); i += 2 {
				s.Tags[tags[i]] = tags[i+1]
			}
		}
		for i := range s.Values {
			s.Values[i] = Float(math.Round(f(float64(i))*1000) / 1000)
		}
		return s
	}
	inFault := func(t float64) bool { return t >= from && t < to }
	hurt := func(t float64) float64 {
		if inFault(t) && !protected {
			return 1
		}
		return 0
	}
	lat := func(base float64) func(float64) float64 {
		return func(t float64) float64 {
			return scale * base * (1 + 4*hurt(t) + 0.15*rng.Float64())
		}
	}
	h := hdrhistogram.New(1, 60_000_000, 3)
	for i := 0; i < 2000; i++ {
		h.RecordValue(int64(scale * 1000 * (1 + rng.ExpFloat64())))
	}
	hist, _ := NewHistogram("us", h)
	r := &Result{
		SchemaVersion: SchemaVersion,
		RunID:         fmt.Sprintf("%s-%s-%d", drill, profile, seed),
		Drill:         drill,
		Incident:      "000_e76083ecc6911798.txt",
		Profile:       profile,
		Release:       "v1.4.0",
		Harness:       "firedrill v0.1.0",
		Complete:      true,
		Start:         fixtureStart,
		End:           fixtureStart.Add(time.Duration(secs) * time.Second),
		Environment: Environment{
			Images:         map[string]string{"memcached": "firedrill/memcached:1.6", "database": "firedrill/mariadb:10.11", "toxiproxy": "firedrill/toxiproxy:2.5.0"},
			ServerVersions: map[string]string{"memcached": "1.6.18", "database": "10.11.6-MariaDB"},
			Memcached:      12, DBFlavor: "mariadb", Generators: 1,
		},
		Parameters: map[string]string{"rate": "2000", "duration": fmt.Sprint(secs, "s"), "hot_keys": "100"},
		Seed:       int64(seed),
		Events: []FaultEvent{
			{At: from, Fault: "hot_set_expiry", Action: Inject, Target: "memcached-0", Name: "expire hot set"},
			{At: to, Fault: "hot_set_expiry", Action: Remove, Target: "memcached-0", Name: "expire hot set"},
			{At: to + 5, Fault: "latency", Action: Inject, Target: "mysql"},
		},
		Series: []Series{
			series(SeriesOpRate, "/s", func(float64) float64 { return 2000 + 50*rng.Float64() }),
			series(SeriesLatencyP50, "ms", lat(1)),
			series(SeriesLatencyP90, "ms", lat(3)),
			series(SeriesLatencyP99, "ms", lat(8)),
			series(SeriesLatencyMax, "ms", lat(20)),
			series(SeriesHitRatio, "", func(t float64) float64 { return 0.97 - 0.5*hurt(t) - 0.01*rng.Float64() }),
			series(SeriesDBQueryRate, "/s", func(t float64) float64 { return scale * (60 + 900*hurt(t) + 10*rng.Float64()) }),
			series(SeriesConnections, "", func(t float64) float64 { return math.Min(150, 20+140*hurt(t)+3*rng.Float64()) }),
			series(SeriesConnCap, "", func(float64) float64 { return 150 }),
			series(SeriesErrorRate, "/s", func(t float64) float64 { return scale * 30 * hurt(t) * rng.Float64() }, "class", "timeout"),
			series(SeriesErrorRate, "/s", func(t float64) float64 { return scale * 10 * hurt(t) * rng.Float64() }, "class", "too_many_connections"),
			// The servers' own counts, as the sampler reads them.
			series(SeriesServerDBUserSelect, "/s", func(t float64) float64 { return scale * (55 + 880*hurt(t) + 10*rng.Float64()) }),
			series(SeriesServerDBUserUpdate, "/s", func(float64) float64 { return 5 + rng.Float64() }),
			series(SeriesServerDBQuestions, "/s", func(t float64) float64 { return scale * (64 + 890*hurt(t) + 10*rng.Float64()) }),
			series(SeriesServerDBThreadsRunning, "threads", func(t float64) float64 { return math.Round(2 + 40*hurt(t) + 2*rng.Float64()) }),
			series(SeriesServerDBThreadsConn, "threads", func(t float64) float64 { return math.Min(151, math.Round(21+140*hurt(t))) }),
			series(SeriesServerMCGets, "/s", func(float64) float64 { return 2000 + 50*rng.Float64() }),
			series(SeriesServerMCHits, "/s", func(t float64) float64 { return 1940 - 1000*hurt(t) }),
			series(SeriesServerMCMisses, "/s", func(t float64) float64 { return 60 + 1000*hurt(t) }),
			series(SeriesServerCPU, "cores", func(t float64) float64 { return 0.2 + 0.7*hurt(t) + 0.05*rng.Float64() }, "container", "mysql"),
			series(SeriesServerCPU, "cores", func(float64) float64 { return 0.1 + 0.02*rng.Float64() }, "container", "memcached-0"),
			series(SeriesServerCPU, "cores", func(float64) float64 { return 0.3 + 0.05*rng.Float64() }, "container", "toxiproxy"),
			series(SeriesServerMem, "MB", func(float64) float64 { return 410 }, "container", "mysql"),
			series(SeriesServerMem, "MB", func(float64) float64 { return 64 }, "container", "memcached-0"),
			series(SeriesServerMem, "MB", func(float64) float64 { return 12 }, "container", "toxiproxy"),
		},
		Sampling: &Sampling{Interval: 1, DBUserCounts: "user_statistics", RunS: secs,
			Note: "SHOW GLOBAL STATUS over the admin port as root; the traffic user's (firedrill) statements from SHOW USER_STATISTICS",
			Sources: []SourceCoverage{{Source: "db", Readings: secs}, {Source: "memcached-0", Readings: secs},
				{Source: "container:mysql", Readings: secs - 1}, {Source: "container:memcached-0", Readings: secs},
				{Source: "container:toxiproxy", Readings: secs - 3, MissingS: 2, Errors: 2, FirstError: "docker stats stream ended: EOF"}}},
		Phases: []Phase{
			{Name: "before", Kind: PhaseBefore, From: 0, To: from, Summary: map[string]Float{"fetch_p99": Float(8.1 * scale), "db_rate": 65, "error_rate": 0, "served_ratio": 1, "server_db_user_select_rate": 60}},
			{Name: "hot_set_expiry", Kind: PhaseFault, Targets: []string{"memcached-0"}, From: from, To: to, Summary: map[string]Float{"fetch_p99": Float(40 * scale), "db_rate": 960, "error_rate": Float(20 * scale), "served_ratio": 0.97, "server_db_user_select_rate": Float(930 * scale)}},
			{Name: "after", Kind: PhaseAfter, From: to, To: float64(secs), Summary: map[string]Float{"fetch_p99": Float(8.3 * scale), "db_rate": 64, "error_rate": 0, SummaryRecovery: Float(12 * scale), SummaryRecovered: 1}},
		},
		Checks: []Check{
			{Name: "traffic ran", Kind: Precondition, Phase: "run", Expr: "offered > 0", Observed: ptr(Float(secs * 2000)), Outcome: Pass, Automatic: true},
			{Name: "the hot set's expiry sends a burst of queries", Kind: Signature, Phase: "hot_set_expiry", Expr: "db_rate >= 10 x before",
				Observed: ptr(Float(960)), Relative: "before", Reference: ptr(Float(65)), Bound: ptr(Float(650)), Outcome: outcomeOf(Signature, !protected), Incident: "000_e76083ecc6911798.txt:5"},
			{Name: "fetches stay fast", Kind: SteadyState, Phase: "hot_set_expiry", Expr: "fetch_p99 <= 2 x before",
				Observed: ptr(Float(40 * scale)), Relative: "before", Reference: ptr(Float(8.1 * scale)), Bound: ptr(Float(16.2 * scale)), Outcome: outcomeOf(SteadyState, protected)},
		},
		Thresholds: []Threshold{
			{Metric: "db_query_rate", Expression: "max<500", OK: protected, Value: ptr(Float(scale * 960))},
			{Metric: "errors", Expression: "rate<0.01", OK: protected},
		},
		Histograms: map[string]Histogram{HistLatency: hist},
	}
	r.Verdict = Verdict{Expected: Broken, Reached: Broken, Pass: true, Observed: []string{"the hot set's expiry sends a burst of queries"}}
	if protected {
		r.Verdict = Verdict{Expected: Held, Reached: Held, Pass: true, NotObserved: []string{"the hot set's expiry sends a burst of queries"}}
	}
	return r
}

func outcomeOf(kind string, ok bool) string {
	switch {
	case kind == Signature && ok:
		return Observed
	case kind == Signature:
		return NotObserved
	case ok:
		return Pass
	}
	return Fail
}

// fixtureSet is every drill in both profiles.
func fixtureSet(secs int, seed uint64, scale float64) []*Result {
	var rs []*Result
	for i, d := range fixtureDrills {
		for _, p := range []string{"unprotected", "protected"} {
			rs = append(rs, fixture(d, p, secs, seed+uint64(i), scale))
		}
	}
	return rs
}

func ptr[T any](v T) *T { return &v }
