package harness

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.k6.io/k6/v2/metrics"

	"github.com/firedrill-dev/firedrill/envvar"
	"github.com/firedrill-dev/firedrill/reports"
)

// Several generators: N k6 processes, each running its own execution
// segment i/N of the sequence 0,1/N,...,1, are started paused, set up once
// and released together through k6's REST API, the way the k6-operator
// does it:
//
//  1. every generator starts with --paused --no-setup and its own --address;
//     generators 1..N-1 also get --no-teardown;
//  2. when all of them are paused before the run, setup() runs once, in
//     generator 0 (POST /v1/setup), and its data is handed to the others
//     (PUT /v1/setup);
//  3. all are resumed (PATCH /v1/status paused=false) one after the other,
//     within milliseconds;
//  4. their samples and HDR files are merged: counters summed per second,
//     HDR histograms merged, and the drill's thresholds evaluated again on
//     the merged samples with k6's own threshold code. Each generator's own
//     exit code 99 is ignored: it judged only its segment.
//
// Every generator sees FIREDRILL_GENERATOR=i and FIREDRILL_GENERATORS=N, and
// every sample carries the tag generator=i.

// segmentSequence returns k6's --execution-segment-sequence for n equal
// segments and the --execution-segment of generator i.
func segmentSequence(n int) string {
	parts := make([]string, 0, n+1)
	parts = append(parts, "0")
	for i := 1; i < n; i++ {
		parts = append(parts, fmt.Sprintf("%d/%d", i, n))
	}
	return strings.Join(append(parts, "1"), ",")
}

func segment(i, n int) string {
	frac := func(k int) string {
		switch k {
		case 0:
			return "0"
		case n:
			return "1"
		}
		return fmt.Sprintf("%d/%d", k, n)
	}
	return frac(i) + ":" + frac(i+1)
}

// GeneratorFiles are what one k6 process (generator) wrote: its --out json
// samples, its --summary-export, its HDR file (FIREDRILL_HDR_OUT) and its
// log. HDR and log may be missing.
type GeneratorFiles struct {
	Samples, Summary, HDR, Log string
}

// filesOf names generator i's files in a run folder. With one generator
// they keep the historical names.
func filesOf(dir string, i, n int) GeneratorFiles {
	if n <= 1 {
		return GeneratorFiles{
			Samples: filepath.Join(dir, "k6-samples.json.gz"),
			Summary: filepath.Join(dir, "k6-summary.json"),
			HDR:     filepath.Join(dir, "histograms.ndjson"),
			Log:     filepath.Join(dir, "k6.log"),
		}
	}
	return GeneratorFiles{
		Samples: filepath.Join(dir, fmt.Sprintf("k6-samples-%d.json.gz", i)),
		Summary: filepath.Join(dir, fmt.Sprintf("k6-summary-%d.json", i)),
		HDR:     filepath.Join(dir, fmt.Sprintf("histograms-%d.ndjson", i)),
		Log:     filepath.Join(dir, fmt.Sprintf("k6-%d.log", i)),
	}
}

// mergeInto fills res from the files of every generator, merged: one
// collector reads them all, so counters add up, gauges (tagged
// generator=i) add up across generators, ledger buckets add up and their
// histograms merge exactly; the checks of spec (nil: none, the run could
// not be judged) are judged on the merge, and k6's thresholds on all
// samples together. servers is the run's sampler file ("" or missing:
// the servers were not sampled). start is time zero when no replay marked
// the start of traffic, duration the time a threshold's counter rate
// divides by. tenants, when not nil, reads the tenant tables (after the
// generators' ledgers are read, before the environment goes) for the
// integrity checks.
func mergeInto(res *reports.Result, start time.Time, files []GeneratorFiles, servers string, duration time.Duration, spec *Spec, tenants func(*collector) error) error {
	col := newCollector(start)
	if err := col.readServers(servers); err != nil {
		return err
	}
	var samples []string
	for i, f := range files {
		if err := col.readSamples(f.Samples); err != nil {
			return fmt.Errorf("generator %d: %w", i, err)
		}
		if f.HDR != "" {
			if err := col.readLedger(f.HDR); err != nil {
				return fmt.Errorf("generator %d: %w", i, err)
			}
		}
		samples = append(samples, f.Samples)
	}
	if tenants != nil {
		if err := tenants(col); err != nil {
			return err
		}
	}
	col.fill(res, spec)
	ths, err := MergedThresholds(files[0].Summary, samples, duration)
	if err != nil {
		return err
	}
	res.Thresholds = ths
	return nil
}

// MergeOutputs builds one result of a drill and profile from the files of
// several generators that ran it together, such as the runner pods of a
// k6-operator TestRun: series and histograms merged exactly, thresholds
// judged on the merge, the verdict decided from them. servers is the run's
// sampler file (ServersFile), "" when the servers were not sampled.
func MergeOutputs(d Drill, profile, release string, files []GeneratorFiles, servers string, spec *Spec) (*reports.Result, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("merge: no generator files")
	}
	expected, ok := d.Expect[profile]
	if !ok {
		return nil, fmt.Errorf("merge %s: unknown profile %q: the drill declares %s", d.Name, profile, strings.Join(d.Profiles, ", "))
	}
	first, last := time.Time{}, time.Time{}
	for _, f := range files {
		err := scanSamples(f.Samples, func(line []byte) {
			if !bytes.Contains(line, []byte(`"Point"`)) {
				return
			}
			var p k6Point
			if json.Unmarshal(line, &p) != nil || p.Type != "Point" {
				return
			}
			if first.IsZero() || p.Data.Time.Before(first) {
				first = p.Data.Time
			}
			if p.Data.Time.After(last) {
				last = p.Data.Time
			}
		})
		if err != nil {
			return nil, err
		}
	}
	if first.IsZero() {
		return nil, fmt.Errorf("merge %s: no samples in the generators' files", d.Name)
	}
	first = first.Truncate(time.Second)
	res := &reports.Result{
		SchemaVersion: reports.SchemaVersion,
		RunID:         "merged-" + first.UTC().Format("20060102-150405"),
		Drill:         d.Name, Incident: d.Incident, Profile: profile,
		Release: release, Harness: Version,
		Start: first.UTC(), End: last.UTC(), Complete: true,
		Parameters:  map[string]string{},
		Environment: reports.Environment{Generators: len(files)},
		Verdict:     reports.Verdict{Expected: expected},
	}
	if err := mergeInto(res, first, files, servers, last.Sub(first), spec, nil); err != nil {
		return nil, err
	}
	return res, nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// runGenerators runs n k6 processes on the drill and fills res from their
// merged output and the servers' readings, which smp stops taking once
// every generator has exited. vars are the environment every generator
// shares; adminDSN reads the tenant tables for the integrity checks.
func runGenerators(ctx context.Context, o RunOptions, res *reports.Result, dir string, vars []string, n int, spec *Spec, smp *Sampler, adminDSN string) error {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.K6Output == nil {
		o.K6Output = io.Discard
	}
	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	seq := segmentSequence(n)
	type outcome struct {
		code int
		err  error
	}
	outcomes := make([]outcome, n)
	addrs := make([]string, n)
	done := make([]chan struct{}, n)
	var wg sync.WaitGroup
	k6Start := time.Now()
	for i := 0; i < n; i++ {
		port, err := freePort()
		if err != nil {
			cancel(err)
			wg.Wait()
			return fmt.Errorf("generator %d: %w", i, err)
		}
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
		f := filesOf(dir, i, n)
		args := []string{"run", "--no-color", "--paused", "--no-setup",
			"--address", addrs[i],
			"--execution-segment", segment(i, n), "--execution-segment-sequence", seq,
			"--tag", "generator=" + strconv.Itoa(i),
			"--out", "json=" + f.Samples, "--summary-export", f.Summary}
		if i > 0 {
			args = append(args, "--no-teardown")
		}
		args = append(args, o.Drill.Path)
		gvars := append(append([]string(nil), vars...),
			envvar.HDROut+"="+f.HDR,
			envvar.Generator+"="+strconv.Itoa(i),
			envvar.Generators+"="+strconv.Itoa(n),
		)
		oi := o
		if i > 0 { // one k6's output on the terminal is readable; all are in their logs
			oi.K6Output = io.Discard
		}
		fmt.Fprintf(o.Progress, "k6[%d]: %s %s\n", i, o.K6, strings.Join(args, " "))
		done[i] = make(chan struct{})
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer close(done[i])
			code, err := runK6(gctx, oi, args, gvars, f.Log)
			outcomes[i] = outcome{code, err}
		}(i)
	}
	if err := releaseGenerators(gctx, o.Progress, addrs, done); err != nil {
		cancel(err)
		wg.Wait()
		return describeCtx(ctx, fmt.Errorf("generators: %w", err))
	}
	release := time.Now()
	wg.Wait()

	var k6Err error
	for i, oc := range outcomes {
		if oc.err != nil && k6Err == nil {
			k6Err = fmt.Errorf("generator %d: %w", i, oc.err)
		}
	}
	if err := smp.Stop(); err != nil && k6Err == nil {
		k6Err = err
	}
	files := make([]GeneratorFiles, n)
	for i := range files {
		files[i] = filesOf(dir, i, n)
	}
	// A run that failed is still merged, without a verdict, so its result
	// shows what ran.
	judged := spec
	if k6Err != nil {
		judged = nil
	}
	for i := 0; i < n && judged != nil; i++ {
		if exc := scriptException(files[i].Log); exc != "" {
			k6Err, judged = fmt.Errorf("the script threw (generator %d): %s", i, exc), nil
		}
	}
	for i, oc := range outcomes {
		if judged != nil && oc.code != 0 && oc.code != k6ThresholdsFailed {
			k6Err, judged = fmt.Errorf("k6 generator %d exited with code %d (see %s)", i, oc.code, files[i].Log), nil
		}
	}
	mergeErr := mergeInto(res, k6Start, files, filepath.Join(dir, ServersFile), time.Since(release), judged, func(c *collector) error {
		return c.readTenants(ctx, adminDSN, dir)
	})
	if k6Err == nil && mergeErr != nil {
		k6Err = mergeErr
	}
	if k6Err != nil {
		return describeCtx(ctx, k6Err)
	}
	progressVerdict(o.Progress, o.Drill.Name+fmt.Sprintf(" (merged, %d generators)", n), res)
	return nil
}

// statusCallTimeout bounds each call to a generator's REST API but
// setup's (a variable for tests).
var statusCallTimeout = 10 * time.Second

// setupCallLimit bounds the wait for generator 0's setup(): above any
// drill's setupTimeout, which k6 itself enforces.
const setupCallLimit = 15 * time.Minute

// releaseGenerators waits until every generator is paused before its run,
// runs setup() once in generator 0, hands its data to the others and
// resumes them all. done[i] closes when generator i exits.
func releaseGenerators(ctx context.Context, progress io.Writer, addrs []string, done []chan struct{}) error {
	client := &http.Client{Timeout: statusCallTimeout}
	ready := make([]bool, len(addrs))
	deadline := time.Now().Add(3 * time.Minute) // init of the slowest generator
	for left := len(addrs); left > 0; {
		if time.Now().After(deadline) {
			return errors.New("not every generator was ready within 3 minutes")
		}
		for i, a := range addrs {
			if ready[i] {
				continue
			}
			select {
			case <-done[i]:
				return fmt.Errorf("generator %d exited before the run started (see its k6 log)", i)
			default:
			}
			if pausedBeforeRun(ctx, client, a) {
				ready[i] = true
				left--
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintf(progress, "generators: %d ready, running setup() once in generator 0\n", len(addrs))
	// setup() seeds and warms: it runs for as long as the script's
	// setupTimeout allows (k6 enforces it), far beyond the status calls'
	// statusCallTimeout; the cap only guards against a generator that never answers.
	sctx, cancel := context.WithTimeout(ctx, setupCallLimit)
	body, err := call(sctx, &http.Client{}, http.MethodPost, addrs[0], "/v1/setup", nil)
	cancel()
	if err != nil {
		return fmt.Errorf("setup in generator 0: %w", err)
	}
	var setup struct {
		Data struct {
			Attributes struct {
				Data json.RawMessage `json:"data"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &setup); err != nil {
		return fmt.Errorf("setup data of generator 0: %w", err)
	}
	data := setup.Data.Attributes.Data
	if string(data) == "null" {
		data = nil
	}
	for i := 1; i < len(addrs); i++ {
		if _, err := call(ctx, client, http.MethodPut, addrs[i], "/v1/setup", data); err != nil {
			return fmt.Errorf("setup data to generator %d: %w", i, err)
		}
	}
	resume := []byte(`{"data":{"type":"status","id":"default","attributes":{"paused":false}}}`)
	for i, a := range addrs {
		if _, err := call(ctx, client, http.MethodPatch, a, "/v1/status", resume); err != nil {
			return fmt.Errorf("resume generator %d: %w", i, err)
		}
	}
	fmt.Fprintf(progress, "generators: %d released\n", len(addrs))
	return nil
}

func pausedBeforeRun(ctx context.Context, client *http.Client, addr string) bool {
	body, err := call(ctx, client, http.MethodGet, addr, "/v1/status", nil)
	if err != nil {
		return false
	}
	var st struct {
		Data struct {
			Attributes struct {
				Status json.RawMessage `json:"status"`
				Paused bool            `json:"paused"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &st) != nil || !st.Data.Attributes.Paused {
		return false
	}
	s := strings.Trim(string(st.Data.Attributes.Status), `"`)
	return s == "4" || s == "PausedBeforeRun" // lib.ExecutionStatusPausedBeforeRun
}

func call(ctx context.Context, client *http.Client, method, addr, path string, body []byte) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// MergedThresholds evaluates the drill's thresholds (as listed in one
// generator's --summary-export) on the samples of every generator together,
// with k6's own threshold code: counters are summed, trends pooled, rates
// pooled, gauges take the latest value. duration is the run's length, for
// a counter's rate.
func MergedThresholds(summaryPath string, samplePaths []string, duration time.Duration) ([]reports.Threshold, error) {
	sum, err := readSummary(summaryPath)
	if err != nil {
		return nil, err
	}
	type want struct {
		name  string
		base  string
		tags  map[string]string
		exprs []string
		sink  metrics.Sink
		mtype string
	}
	var wants []*want
	byBase := map[string][]*want{}
	for name := range sum.Metrics {
		ths := sum.thresholds(name)
		if len(ths) == 0 {
			continue
		}
		base, tagList, err := metrics.ParseMetricName(name)
		if err != nil {
			return nil, fmt.Errorf("threshold metric %q: %w", name, err)
		}
		w := &want{name: name, base: base, tags: map[string]string{}}
		for _, kv := range tagList {
			k, v, _ := strings.Cut(kv, ":")
			w.tags[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
		for expr := range ths {
			w.exprs = append(w.exprs, expr)
		}
		sort.Strings(w.exprs)
		wants = append(wants, w)
		byBase[base] = append(byBase[base], w)
	}
	types := map[string]string{}
	for _, p := range samplePaths {
		err := scanSamples(p, func(line []byte) {
			var head struct {
				Type   string `json:"type"`
				Metric string `json:"metric"`
			}
			if json.Unmarshal(line, &head) != nil || len(byBase[head.Metric]) == 0 {
				return
			}
			switch head.Type {
			case "Metric":
				var m struct {
					Data struct {
						Type string `json:"type"`
					} `json:"data"`
				}
				if json.Unmarshal(line, &m) == nil {
					types[head.Metric] = m.Data.Type
				}
			case "Point":
				var pt k6Point
				if json.Unmarshal(line, &pt) != nil {
					return
				}
				for _, w := range byBase[head.Metric] {
					if w.sink == nil {
						t := types[head.Metric]
						mt, err := metricType(t)
						if err != nil {
							continue
						}
						w.mtype = t
						w.sink = metrics.NewSink(mt)
					}
					if !tagsMatch(pt.Data.Tags, w.tags) {
						continue
					}
					w.sink.Add(metrics.Sample{Time: pt.Data.Time, Value: pt.Data.Value})
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	var out []reports.Threshold
	for _, w := range wants {
		sink := w.sink
		if sink == nil { // no sample at all: an empty sink of the metric's type
			mt, err := metricType(types[w.base])
			if err != nil {
				mt = metrics.Counter
			}
			sink = metrics.NewSink(mt)
		}
		for _, expr := range w.exprs {
			ts := metrics.NewThresholds([]string{expr})
			if err := ts.Parse(); err != nil {
				return nil, fmt.Errorf("threshold %s %q: %w", w.name, expr, err)
			}
			ok, err := ts.Run(sink, duration)
			t := reports.Threshold{Metric: w.name, Expression: expr, OK: ok && err == nil}
			if v, has := aggregate(sink, expr, duration); has {
				f := reports.Float(v)
				t.Value = &f
			}
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Metric != out[j].Metric {
			return out[i].Metric < out[j].Metric
		}
		return out[i].Expression < out[j].Expression
	})
	return out, nil
}

func metricType(t string) (metrics.MetricType, error) {
	var mt metrics.MetricType
	err := mt.UnmarshalText([]byte(t))
	return mt, err
}

func tagsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// aggregate is the value an expression judges, for the report.
func aggregate(sink metrics.Sink, expr string, d time.Duration) (float64, bool) {
	agg := strings.TrimSpace(strings.FieldsFunc(expr, func(r rune) bool { return strings.ContainsRune("<>=!", r) })[0])
	switch s := sink.(type) {
	case *metrics.CounterSink:
		switch agg {
		case "count":
			return s.Value, true
		case "rate":
			if d > 0 {
				return s.Value / d.Seconds(), true
			}
		}
	case *metrics.GaugeSink:
		if agg == "value" && !s.IsEmpty() {
			return s.Value, true
		}
	case *metrics.RateSink:
		if agg == "rate" && s.Total > 0 {
			return float64(s.Trues) / float64(s.Total), true
		}
	case *metrics.TrendSink:
		if s.IsEmpty() {
			return 0, false
		}
		switch agg {
		case "min":
			return s.Min(), true
		case "max":
			return s.Max(), true
		case "avg":
			return s.Avg(), true
		case "med":
			return s.P(0.5), true
		}
		if p, ok := strings.CutPrefix(agg, "p("); ok {
			if v, err := strconv.ParseFloat(strings.TrimSuffix(p, ")"), 64); err == nil {
				return s.P(v / 100), true
			}
		}
	}
	return 0, false
}

// scanSamples calls f on every line of a k6 --out json file (plain or .gz).
func scanSamples(path string, f func([]byte)) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read k6 samples: %w", err)
	}
	defer fh.Close()
	var r io.Reader = fh
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(fh)
		if err != nil {
			return fmt.Errorf("read k6 samples %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		f(sc.Bytes())
	}
	if err := sc.Err(); err != nil && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("read k6 samples %s: %w", path, err)
	}
	return nil
}
