package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/firedrill-dev/firedrill/reports"
)

// serverFile writes sampler lines with the sampler's own writer.
func serverFile(t *testing.T, path string, lines []ServerLine) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := &lineWriter{f: f}
	for _, l := range lines {
		w.write(l)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
}

// withServers is the fixture's collector with the sampler's lines read
// too.
func (f *fixture) withServers(t *testing.T, lines []ServerLine) *collector {
	t.Helper()
	dir := t.TempDir()
	samplesFile(t, filepath.Join(dir, "s.json.gz"), f.samples)
	ledgerFile(t, filepath.Join(dir, "l.ndjson"), f.buckets)
	serverFile(t, filepath.Join(dir, ServersFile), lines)
	c := newCollector(f.k6)
	for _, err := range []error{
		c.readSamples(filepath.Join(dir, "s.json.gz")),
		c.readLedger(filepath.Join(dir, "l.ndjson")),
		c.readServers(filepath.Join(dir, ServersFile)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	c.finish()
	return c
}

// at is a time s seconds from the fixture's start of traffic.
func (f *fixture) at(s float64) time.Time {
	return f.traffic.Add(time.Duration(s * float64(time.Second)))
}

func declare(source string, tags map[string]string) ServerLine {
	return ServerLine{Type: LineSource, Source: source, Tags: tags, Interval: 1}
}

func counterAt(f *fixture, source string, tags map[string]string, s float64, metric string, v float64) ServerLine {
	return ServerLine{Type: LineSample, Source: source, Tags: tags, T: f.at(s), Counters: map[string]float64{metric: v}}
}

// A counter's increment between two readings is spread over the time
// between them: a window takes the share that fell inside it, sums over
// the run are exact, a counter that went down was reset, and what was
// counted before traffic started is never judged.
func TestServerCounterSharesAndRates(t *testing.T) {
	f := newFixture()
	lines := []ServerLine{declare(sourceDB, nil)}
	// Readings at x.5 s: 100 selects in the second before traffic
	// (set-up: never judged), then per interval 100, 50, 200 over two
	// seconds (a missed reading), a reset (the server restarted and
	// counted 30 since), then 10 a second.
	vals := []struct{ s, v float64 }{{-1.5, 1000}, {-0.5, 1100}, {0.5, 1200}, {1.5, 1300}, {2.5, 1350}, {4.5, 1550}, {5.5, 30},
		{6.5, 40}, {7.5, 50}, {8.5, 60}, {9.5, 70}, {10.5, 80}}
	for _, x := range vals {
		lines = append(lines, counterAt(f, sourceDB, nil, x.s, mDBUserSelect, x.v))
	}
	c := f.withServers(t, lines)
	get := func(name string, w span) float64 {
		t.Helper()
		v, ok := c.metric(name, nil, w)
		if !ok {
			t.Fatalf("%s over %v: no data", name, w)
		}
		return v
	}
	// (−0.5, 0.5] counted 100: half of it after time zero.
	perSec := c.servers.perSecond(mDBUserSelect, nil, 0, 9)
	want := []float64{50 + 50, 50 + 25, 25 + 50, 100, 50 + 15, 15 + 5, 10, 10, 10, 10}
	for i := range want {
		if !approx(perSec[i], want[i]) {
			t.Errorf("second %d counted %v, want %v (all %v)", i, perSec[i], want[i], perSec)
		}
	}
	cases := []struct {
		name string
		w    span
		want float64
	}{
		{mDBUserSelect, span{0, 10}, 50 + 100 + 50 + 200 + 30 + 5*10 - 5}, // the run: (9.5, 10] is half of the last 10
		{mDBUserSelect, span{-100, 3}, 50 + 100 + 50 + 50},                // clipped at time zero: set-up is not judged
		{mDBUserSelect + statRate, span{0, 3}, (100 + 75 + 75) / 3.0},
		{mDBUserSelect + statRatePeak, span{0, 6}, 100},
		{mDBUserSelect + statRatePeak, span{6, 10}, 10},
	}
	for _, cs := range cases {
		if got := get(cs.name, cs.w); !approx(got, cs.want) {
			t.Errorf("%s over %v = %v, want %v", cs.name, cs.w, got, cs.want)
		}
	}
	var sum float64
	for _, v := range perSec {
		sum += v
	}
	if total := get(mDBUserSelect, span{0, 10}); !approx(sum, total) {
		t.Errorf("the seconds add up to %v, the run counted %v", sum, total)
	}
	if _, ok := c.metric(mDBUserUpdate, nil, span{0, 10}); ok {
		t.Error("a metric never read has a value; want no data")
	}
	if _, ok := c.metric(mDBUserSelect, nil, span{20, 30}); ok {
		t.Error("a window after the end of traffic has a value; want no data")
	}
}

// A gauge's peak and mean are over the phase's seconds, summed over the
// servers (each server's value in each second, a reading a little late
// carried from the second before); a check may pick one server.
func TestServerGaugesAcrossServers(t *testing.T) {
	f := newFixture()
	mc := func(i int) map[string]string { return map[string]string{"server": "memcached-" + string(rune('0'+i))} }
	lines := []ServerLine{declare("memcached-0", mc(0)), declare("memcached-1", mc(1))}
	for s := 0; s < 10; s++ {
		conns0 := 10.0
		if s == 4 {
			conns0 = 50
		}
		lines = append(lines, ServerLine{Type: LineSample, Source: "memcached-0", Tags: mc(0), T: f.at(float64(s) + 0.2),
			Gauges: map[string]float64{mMCCurrConnections: conns0}})
		if s == 6 { // memcached-1 misses second 6: its reading of second 5 carries
			continue
		}
		lines = append(lines, ServerLine{Type: LineSample, Source: "memcached-1", Tags: mc(1), T: f.at(float64(s) + 0.9),
			Gauges: map[string]float64{mMCCurrConnections: 5}})
	}
	c := f.withServers(t, lines)
	secs := c.servers.gaugeSeconds(mMCCurrConnections, nil, 0, 9)
	for i, v := range secs {
		want := 15.0
		if i == 4 {
			want = 55
		}
		if v != want {
			t.Errorf("second %d: %v connections, want %v (all %v)", i, v, want, secs)
		}
	}
	check := func(name string, sel map[string]string, w span, want float64) {
		t.Helper()
		v, ok := c.metric(name, sel, w)
		if !ok || !approx(v, want) {
			t.Errorf("%s%v over %v = %v (%v), want %v", name, sel, w, v, ok, want)
		}
	}
	check(mMCCurrConnections+statPeak, nil, span{3, 6}, 55)
	check(mMCCurrConnections+statMean, nil, span{3, 6}, (15+55+15)/3.0)
	check(mMCCurrConnections+statPeak, mc(1), span{0, 10}, 5)
	check(mMCCurrConnections, nil, span{0, 10}, 15)
	if _, ok := c.metric(mMCCurrConnections+statPeak, map[string]string{"server": "memcached-9"}, span{0, 10}); ok {
		t.Error("a server that does not exist has a peak; want no data")
	}
}

func TestParseServerName(t *testing.T) {
	good := map[string][2]string{
		"server_db_user_select":             {mDBUserSelect, ""},
		"server_db_user_select_rate":        {mDBUserSelect, statRate},
		"server_db_user_select_rate_peak":   {mDBUserSelect, statRatePeak},
		"server_db_threads_running_peak":    {mDBThreadsRunning, statPeak},
		"server_db_threads_running_mean":    {mDBThreadsRunning, statMean},
		"server_cpu_rate":                   {mCPU, statRate},
		"server_mem_mb_peak":                {mMem, statPeak},
		"server_db_user_busy_s_rate":        {mDBUserBusy, statRate},
		"server_mc_curr_connections":        {mMCCurrConnections, ""},
		"server_db_max_conn_errors_rate":    {mDBMaxConnErrors, statRate},
		"server_mc_get_expired_rate_peak":   {mMCGetExpired, statRatePeak},
		"server_db_aborted_connects":        {mDBAbortedConnects, ""},
		"server_db_user_connections_peak":   {mDBUserConnections, statPeak},
		"server_db_threads_connected_mean":  {mDBThreadsConnected, statMean},
		"server_db_user_timeouts_rate_peak": {mDBUserTimeouts, statRatePeak},
	}
	for name, want := range good {
		m, stat, ok := parseServerName(name)
		if !ok || m != want[0] || stat != want[1] {
			t.Errorf("%s = %q %q %v, want %q %q", name, m, stat, ok, want[0], want[1])
		}
	}
	// A gauge has no rate, a counter no peak of its own value.
	for _, name := range []string{"server_db_threads_running_rate", "server_mc_cmd_get_peak", "server_mc_cmd_get_mean", "server_db_nothing", "server_cpu_peak"} {
		if m, stat, ok := parseServerName(name); ok {
			t.Errorf("%s parsed as %q %q; want unknown", name, m, stat)
		}
	}
}

func TestMissingSeconds(t *testing.T) {
	every := func(from, step float64, n int) []float64 {
		var out []float64
		for i := range n {
			out = append(out, from+step*float64(i))
		}
		return out
	}
	drop := func(ts []float64, from, to float64) []float64 {
		var out []float64
		for _, t := range ts {
			if t < from || t >= to {
				out = append(out, t)
			}
		}
		return out
	}
	cases := []struct {
		name string
		rel  []float64
		end  float64
		want int
	}{
		{"every second", every(-2.4, 1, 110), 100, 0},
		// Docker's stats come a little more than a second apart: over
		// 100 s one second holds no reading, and none is missing.
		{"a stream 6 ms slow", every(-0.3, 1.006, 110), 100, 0},
		{"a 3 s stall", drop(every(-2.4, 1, 110), 40, 42), 100, 2},
		{"started late", every(5.6, 1, 100), 100, 5},
		{"stopped early", every(-0.5, 1, 60), 100, 41},
		{"never read", nil, 100, 100},
		{"read only before and after", []float64{-3, -2, 120}, 100, 100},
	}
	for _, cs := range cases {
		if got := missingSeconds(cs.rel, cs.end); got != cs.want {
			t.Errorf("%s: %d missing seconds, want %d", cs.name, got, cs.want)
		}
	}
}

// Every source must be read every second of the run (but one in a
// hundred): a source with gaps makes the run invalid, naming it, and one
// that was declared and never answered counts as missing throughout.
func TestSamplingCoverageIsAPrecondition(t *testing.T) {
	f := newFixture()
	spec := mustSpec(t, `{"checks":[{"name":"h","kind":"steady","phase":"run","expr":"offered > 0"}]}`)
	read := func(source string, skip func(s int) bool) []ServerLine {
		out := []ServerLine{declare(source, nil)}
		for s := -2; s < 12; s++ {
			if !skip(s) {
				out = append(out, counterAt(f, source, nil, float64(s)+0.3, mDBQuestions, float64(10*s)))
			}
		}
		return out
	}
	never := func(int) bool { return false }
	judged := func(lines []ServerLine) (reports.Check, string) {
		t.Helper()
		c := f.withServers(t, lines)
		checks := c.judge(spec, "default", c.phases(spec))
		verdict, _, _, _ := decide(reports.Held, checks)
		for _, ch := range checks {
			if ch.Name == "every server was sampled every second" {
				return ch, verdict
			}
		}
		t.Fatalf("no sampling precondition in %+v", checks)
		return reports.Check{}, ""
	}
	ch, verdict := judged(append(read(sourceDB, never), read("memcached-0", never)...))
	if ch.Outcome != reports.Pass || verdict != reports.Held || *ch.Observed != 0 {
		t.Errorf("every source read every second: %+v, verdict %s", ch, verdict)
	}
	gappy := read("memcached-0", func(s int) bool { return s >= 3 && s < 6 })
	gappy = append(gappy, ServerLine{Type: LineError, Source: "memcached-0", T: f.at(3.3), Err: "dial tcp: connection refused"})
	lines := append(append(read(sourceDB, never), gappy...), declare("container:mysql", nil))
	ch, verdict = judged(lines)
	// no check reads the containers' CPU or memory: their gaps void nothing
	if ch.Outcome != reports.Fail || verdict != reports.Invalid || *ch.Observed != 3 ||
		!strings.Contains(ch.Note, "memcached-0 missed 3 of 10 s (dial tcp: connection refused)") || strings.Contains(ch.Note, "container:mysql") {
		t.Errorf("a gap, and a container never read that no check reads: %+v, verdict %s; want invalid on memcached-0's 3 s alone", ch, verdict)
	}
	spec = mustSpec(t, `{"checks":[{"name":"h","kind":"steady","phase":"run","expr":"server_cpu_rate{container=mysql} <= 4"}]}`)
	ch, verdict = judged(lines)
	if ch.Outcome != reports.Fail || verdict != reports.Invalid || *ch.Observed != 10 {
		t.Errorf("a check reads a container never read: %+v, verdict %s; want invalid, worst source missing all 10 s", ch, verdict)
	}
	for _, want := range []string{"memcached-0 missed 3 of 10 s (dial tcp: connection refused)", "container:mysql missed 10 of 10 s"} {
		if !strings.Contains(ch.Note, want) {
			t.Errorf("note %q lacks %q", ch.Note, want)
		}
	}
	c := f.withServers(t, gappy)
	cov := c.coverage()
	if len(cov.Sources) != 1 || cov.Sources[0].Readings != 7 || cov.Sources[0].MissingS != 3 || cov.Sources[0].Errors != 1 || cov.RunS != 10 {
		t.Errorf("coverage %+v", cov)
	}
}

// A run without a sampler (a merge of a k6-operator's pods) has no server
// metrics and no sampling precondition.
func TestNoSamplerNoServerFigures(t *testing.T) {
	f := newFixture()
	c := f.collector(t)
	if err := c.readServers(filepath.Join(t.TempDir(), ServersFile)); err != nil {
		t.Fatalf("a missing sampler file: %v", err)
	}
	spec := mustSpec(t, `{"checks":[{"name":"h","kind":"steady","phase":"run","expr":"offered > 0"}]}`)
	for _, ch := range c.judge(spec, "default", c.phases(spec)) {
		if strings.Contains(ch.Name, "sampled") {
			t.Errorf("a sampling precondition without a sampler: %+v", ch)
		}
	}
	if _, ok := c.metric(mDBQuestions+statRate, nil, span{0, 10}); ok {
		t.Error("a server metric without a sampler has a value")
	}
	var res reports.Result
	c.fill(&res, spec)
	if res.Sampling != nil || len(res.Find(reports.SeriesServerDBUserSelect)) != 0 {
		t.Errorf("sampling %+v without a sampler", res.Sampling)
	}
}

// The file is read as the sampler writes it: a last line cut short by a
// killed run is dropped, a broken line before the end is an error.
func TestReadServersCutShort(t *testing.T) {
	f := newFixture()
	dir := t.TempDir()
	path := filepath.Join(dir, ServersFile)
	serverFile(t, path, []ServerLine{declare(sourceDB, nil), counterAt(f, sourceDB, nil, 0.5, mDBQuestions, 1), counterAt(f, sourceDB, nil, 1.5, mDBQuestions, 11)})
	b, _ := os.ReadFile(path)
	cut := append(append([]byte(nil), b...), []byte(`{"type":"sample","source":"db","t":"2026-01-0`)...)
	os.WriteFile(path, cut, 0o644)
	c := newCollector(f.traffic)
	if err := c.readServers(path); err != nil {
		t.Fatalf("a cut last line: %v", err)
	}
	if n := len(c.servers.sources[sourceDB].times); n != 2 {
		t.Errorf("%d readings, want the 2 whole ones", n)
	}
	os.WriteFile(path, append(append([]byte("{broken\n"), b...), '\n'), 0o644)
	if err := newCollector(f.traffic).readServers(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a broken first line: %v, want an error naming line 1", err)
	}
}

// The result carries the servers' series under the names the report
// draws, and phase summaries carry their figures.
func TestServerSeriesAndSummaries(t *testing.T) {
	f := newFixture()
	mc := map[string]string{"server": "memcached-0"}
	db := map[string]string{"container": "mysql"}
	lines := []ServerLine{declare(sourceDB, nil), declare("memcached-0", mc), declare("container:mysql", db)}
	for s := -1; s <= 11; s++ {
		x := float64(s)
		lines = append(lines,
			ServerLine{Type: LineSample, Source: sourceDB, T: f.at(x + 0.5), Counters: map[string]float64{
				mDBUserSelect: 100 * x, mDBUserUpdate: 10 * x, mDBQuestions: 120 * x, mDBMaxConnErrors: 0,
			}, Gauges: map[string]float64{mDBThreadsRunning: 3, mDBThreadsConnected: 20}},
			ServerLine{Type: LineSample, Source: "memcached-0", Tags: mc, T: f.at(x + 0.1), Counters: map[string]float64{
				mMCCmdGet: 1000 * x, mMCGetHits: 900 * x, mMCGetMisses: 100 * x, mMCGetExpired: 0,
			}, Gauges: map[string]float64{mMCCurrConnections: 9}},
			ServerLine{Type: LineSample, Source: "container:mysql", Tags: db, T: f.at(x + 0.7),
				Counters: map[string]float64{mCPU: 0.5 * x}, Gauges: map[string]float64{mMem: 300}},
		)
	}
	c := f.withServers(t, lines)
	spec := mustSpec(t, `{"checks":[{"name":"h","kind":"steady","phase":"run","expr":"server_mc_hit_ratio >= 0.89"}]}`)
	var res reports.Result
	c.fill(&res, spec)
	for _, name := range []string{reports.SeriesServerDBUserSelect, reports.SeriesServerDBUserUpdate, reports.SeriesServerDBQuestions,
		reports.SeriesServerDBThreadsRunning, reports.SeriesServerDBThreadsConn, reports.SeriesServerDBMaxConnErrors,
		reports.SeriesServerMCGets, reports.SeriesServerMCHits, reports.SeriesServerMCMisses, reports.SeriesServerMCExpired,
		reports.SeriesServerCPU, reports.SeriesServerMem} {
		ss := res.Find(name)
		if len(ss) == 0 {
			t.Errorf("no series %s", name)
			continue
		}
		if len(ss[0].Values) != 10 || math.IsNaN(float64(ss[0].Values[5])) {
			t.Errorf("series %s: %v", name, ss[0].Values)
		}
	}
	if gets := res.Find(reports.SeriesServerMCGets); len(gets) != 2 || gets[0].Tags != nil || gets[1].Tags["server"] != "memcached-0" || gets[0].Values[3] != 1000 {
		t.Errorf("memcached gets: want the fleet's series and the server's, 1000/s: %+v", gets)
	}
	if cpu := res.Find(reports.SeriesServerCPU, "container", "mysql"); len(cpu) != 1 || cpu[0].Values[2] != 0.5 {
		t.Errorf("mysql's CPU: %+v, want 0.5 cores", cpu)
	}
	run := res.Phases[len(res.Phases)-1]
	for key, want := range map[string]float64{
		"server_db_user_select_rate": 100, "server_db_user_update_rate": 10, "server_db_threads_running_peak": 3,
		"server_mc_cmd_get_rate": 1000, "server_mc_hit_ratio": 0.9, "server_cpu_rate{container=mysql}": 0.5,
		"server_db_max_conn_errors": 0,
	} {
		if got, ok := run.Summary[key]; !ok || !approx(float64(got), want) {
			t.Errorf("run summary %s = %v (%v), want %v", key, got, ok, want)
		}
	}
	for _, ch := range res.Checks {
		if ch.Name == "h" && ch.Outcome != reports.Pass {
			t.Errorf("a check on a server metric: %+v", ch)
		}
	}
	if res.Sampling == nil || len(res.Sampling.Sources) != 3 {
		t.Errorf("sampling %+v", res.Sampling)
	}
}

// A container's cgroup files, v1 and v2, read as the daemon's stats are:
// CPU seconds, memory less the page cache the kernel can drop; a container
// whose cgroup the harness cannot see is read through the daemon.
func TestCgroupFilesReadAsDockerStats(t *testing.T) {
	root := t.TempDir()
	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "cpuacct", "docker", "aaa", "cpuacct.usage"), "2500000000\n")
	write(filepath.Join(root, "memory", "docker", "aaa", "memory.usage_in_bytes"), fmt.Sprint(300<<20)+"\n")
	write(filepath.Join(root, "memory", "docker", "aaa", "memory.stat"), "cache 1\ninactive_file 7\ntotal_inactive_file "+fmt.Sprint(100<<20)+"\n")
	write(filepath.Join(root, "system.slice", "docker-bbb.scope", "cpu.stat"), "usage_usec 1500000\nuser_usec 1000000\n")
	write(filepath.Join(root, "system.slice", "docker-bbb.scope", "memory.current"), fmt.Sprint(64<<20)+"\n")
	write(filepath.Join(root, "system.slice", "docker-bbb.scope", "memory.stat"), "anon 1\ninactive_file "+fmt.Sprint(16<<20)+"\n")
	for _, c := range []struct {
		id       string
		cpu, mem float64
	}{{"aaa", 2.5, 200}, {"bbb", 1.5, 48}} {
		g := findCgroup(root, c.id)
		if g == nil {
			t.Fatalf("%s: no cgroup found", c.id)
		}
		l, err := g.read()
		if err != nil || l.Counters[mCPU] != c.cpu || l.Gauges[mMem] != c.mem || l.T.IsZero() {
			t.Errorf("%s: reading %+v (%v), want %v CPU seconds and %v MiB", c.id, l, err, c.cpu, c.mem)
		}
	}
	if g := findCgroup(root, "ccc"); g != nil {
		t.Errorf("a container without cgroup files: %+v, want nil (read through the daemon)", g)
	}
	if err := os.Remove(filepath.Join(root, "cpuacct", "docker", "aaa", "cpuacct.usage")); err != nil {
		t.Fatal(err)
	}
	if _, err := findCgroup(root, "bbb").read(); err != nil {
		t.Fatal(err)
	}
	if _, err := (&cgroupFiles{cpu: filepath.Join(root, "cpuacct", "docker", "aaa", "cpuacct.usage")}).read(); err == nil {
		t.Error("a removed cgroup file read without an error")
	}
}

// A container's memory is what docker stats shows: usage less the page
// cache the kernel can drop; its CPU a running total in seconds; a
// stopped container's empty records are no reading.
func TestContainerLine(t *testing.T) {
	var st container.StatsResponse
	st.Read = time.Unix(100, 0)
	st.CPUStats.CPUUsage.TotalUsage = 2_500_000_000
	st.MemoryStats.Usage = 300 << 20
	st.MemoryStats.Stats = map[string]uint64{"inactive_file": 100 << 20}
	l, ok := containerLine(st)
	if !ok || l.Counters[mCPU] != 2.5 || l.Gauges[mMem] != 200 || !l.T.Equal(st.Read) {
		t.Errorf("reading %+v (%v), want 2.5 CPU seconds and 200 MiB", l, ok)
	}
	st.MemoryStats.Stats = map[string]uint64{"total_inactive_file": 50 << 20}
	if l, _ := containerLine(st); l.Gauges[mMem] != 250 {
		t.Errorf("cgroup v1: %v MiB, want 250", l.Gauges[mMem])
	}
	if _, ok := containerLine(container.StatsResponse{}); ok {
		t.Error("an empty record (a stopped container) is a reading")
	}
}

// The README's tables name every server metric a check can use, so the
// documentation stays true to what the sampler records.
func TestREADMENamesEveryServerMetric(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for name := range serverMetrics {
		if !strings.Contains(readme, "`"+name+"`") {
			t.Errorf("README.md does not name %s", name)
		}
	}
	for _, name := range []string{mcHitRatio, "NAME_rate_peak", "NAME_peak", "NAME_mean", ServersFile, "every server was sampled every second"} {
		if !strings.Contains(readme, name) {
			t.Errorf("README.md does not mention %s", name)
		}
	}
}

// A thread raised after the first is raised off the reading's path, and
// the thread given up is put back first; a put-back that fails is tried
// again with the next thread, so no traffic thread keeps the sampler's
// priority for good.
func TestSamplerThreadPriorityIsRaisedInTheBackground(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	release := make(chan struct{})
	failPutBack := true
	p := &priorityConn{want: make(chan int64, 1), setNice: func(ctx context.Context, tid int64, nice int) error {
		if tid == 7 {
			select { // a Docker daemon that stalls
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, fmt.Sprintf("%d:%d", tid, nice))
		if nice == 0 && failPutBack {
			failPutBack = false
			return errors.New("exec timed out")
		}
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.raiseLoop(ctx, 5*time.Second) }()
	p.raise(ctx, 5) // the first, before any reading
	p.want <- 6
	p.want <- 7 // a raise already pending is not waited for by the asker
	// 6's put-back of 5 fails: 5 stays raised, and 6 is not raised on top
	// of it; 7 waits on the stalled daemon
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		r := p.raised
		p.mu.Unlock()
		if r == 7 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	want := []string{"5:-15", "5:0", "5:0", "7:-15"}
	if fmt.Sprint(calls) != fmt.Sprint(want) || p.raised != 7 {
		t.Errorf("renices %v, raised %d; want %v, raised 7", calls, p.raised, want)
	}
}

// loopLines runs one source's sampling loop with cfg for d and returns
// the lines it wrote.
func loopLines(t *testing.T, cfg samplerConfig, d time.Duration, read func(context.Context) (ServerLine, error)) []ServerLine {
	t.Helper()
	path := filepath.Join(t.TempDir(), ServersFile)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sampler{cfg: cfg, out: &lineWriter{f: f}}
	ctx, cancel := context.WithCancel(context.Background())
	s.loop(ctx, "db", nil, read)
	time.Sleep(d)
	cancel()
	s.wg.Wait()
	if err := s.out.close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []ServerLine
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var l ServerLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	return lines
}

// Every reading carries its round trip, a failed one too: when a source
// misses seconds under load, servers.ndjson shows how long its readings
// took and whether they were cut off.
func TestSamplerRecordsEachReadingsRoundTrip(t *testing.T) {
	n := 0
	lines := loopLines(t, samplerConfig{interval: 50 * time.Millisecond, timeout: time.Second}, 180*time.Millisecond,
		func(context.Context) (ServerLine, error) {
			n++
			time.Sleep(20 * time.Millisecond)
			if n%2 == 0 {
				return ServerLine{}, errors.New("global status: context deadline exceeded")
			}
			return ServerLine{Counters: map[string]float64{"x": 1}}, nil
		})
	kinds := map[string]int{}
	for _, l := range lines {
		if l.TookMs < 20 || l.TookMs > 1000 {
			t.Errorf("%s line took_ms %v, want the reading's 20 ms or a little more", l.Type, l.TookMs)
		}
		kinds[l.Type]++
	}
	if kinds[LineSample] == 0 || kinds[LineError] == 0 {
		t.Errorf("lines %v, want readings and failed ones", kinds)
	}
}

// A reading the server answers late still serves its tick: the next tick
// waits for it and is served as soon as it ends. Only a tick that passes
// while an earlier reading still runs goes unserved, and only that is a
// gap. (Midpoints alone would count the late answer as a missed tick.)
func TestALateReadingStillServesItsTick(t *testing.T) {
	const iv = 200 * time.Millisecond
	n := 0
	lines := loopLines(t, samplerConfig{interval: iv, timeout: 5 * iv}, 12*iv+iv/2,
		func(context.Context) (ServerLine, error) {
			n++
			switch n {
			case 3: // answered 1.5 intervals late: the next tick waits for it
				time.Sleep(3 * iv / 2)
			case 6: // 2.5 intervals: one tick passes unserved
				time.Sleep(5 * iv / 2)
			}
			return ServerLine{Counters: map[string]float64{"x": float64(n)}}, nil
		})
	if len(lines) < 8 {
		t.Fatalf("%d readings, want at least 8", len(lines))
	}
	ticks := func(d time.Duration) int { return int(math.Round(float64(d) / float64(iv))) }
	var dueGaps, midGaps []int
	for i := 1; i < 7; i++ {
		if lines[i].Due.IsZero() {
			t.Fatalf("reading %d has no due tick: %+v", i, lines[i])
		}
		dueGaps = append(dueGaps, ticks(lines[i].Due.Sub(lines[i-1].Due)))
		midGaps = append(midGaps, ticks(lines[i].T.Sub(lines[i-1].T)))
	}
	// readings 1..7: the 3rd late, the 6th so late that a tick passed
	if want := []int{1, 1, 1, 1, 1, 2}; fmt.Sprint(dueGaps) != fmt.Sprint(want) {
		t.Errorf("ticks between the readings' due times %v, want %v", dueGaps, want)
	}
	if midGaps[1] != 2 {
		t.Errorf("midpoints %v: the late 3rd reading's should sit 2 ticks after the 2nd (what the coverage must not count)", midGaps)
	}
}

// Coverage counts the ticks served, not the readings' midpoints: a
// reading answered 1.5 s late followed by one on the tick that waited for
// it misses nothing; a file without due ticks (older runs) is judged on
// the midpoints as before.
func TestCoverageCountsTheTicksServed(t *testing.T) {
	f := newFixture()
	lines := func(withDue bool) []ServerLine {
		out := []ServerLine{declare(sourceDB, nil)}
		for s := -2; s < 12; s++ {
			mid := float64(s) + 0.05
			switch s {
			case 4: // took 1.6 s: read somewhere in 4.0 .. 5.6
				mid = 4.8
			case 5: // its tick waited: served at 5.6
				mid = 5.62
			}
			l := counterAt(f, sourceDB, nil, mid, mDBQuestions, float64(10*s))
			if withDue {
				l.Due = f.at(float64(s))
			}
			out = append(out, l)
		}
		return out
	}
	for _, cs := range []struct {
		due  bool
		want int
	}{{true, 0}, {false, 1}} {
		c := f.withServers(t, lines(cs.due))
		cov := c.coverage()
		if len(cov.Sources) != 1 || cov.Sources[0].MissingS != cs.want {
			t.Errorf("due ticks recorded %v: coverage %+v, want %d missing", cs.due, cov.Sources, cs.want)
		}
	}
}
