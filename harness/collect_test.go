package harness

import (
	"compress/gzip"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/firedrill-dev/firedrill/reports"
)

func point(metric string, t time.Time, v float64, tags map[string]string) map[string]any {
	return map[string]any{"type": "Point", "metric": metric, "data": map[string]any{"time": t, "value": v, "tags": tags}}
}

func seriesOf(t *testing.T, ss []reports.Series, metric string) []reports.Float {
	t.Helper()
	for _, s := range ss {
		if s.Metric == metric {
			return s.Values
		}
	}
	t.Fatalf("no series %s", metric)
	return nil
}

func TestCollectorSeriesEventsPhases(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	path := filepath.Join(dir, "samples.json.gz")
	f, _ := os.Create(path)
	gz := gzip.NewWriter(f)
	enc := json.NewEncoder(gz)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	for s := 0; s < 6; s++ {
		enc.Encode(point("cache_fetches", at(float64(s)+0.1), 60, nil))
		enc.Encode(point("cache_fetches", at(float64(s)+0.6), 40, nil))
		enc.Encode(point("cache_hits", at(float64(s)+0.1), 90, nil))
		enc.Encode(point("cache_misses", at(float64(s)+0.1), 10, nil))
		enc.Encode(point("db_queries", at(float64(s)+0.2), float64(10*(s+1)), nil))
		enc.Encode(point("db_connections", at(float64(s)+0.2), 3, map[string]string{"process": "0"}))
		enc.Encode(point("db_connections", at(float64(s)+0.2), 4, map[string]string{"process": "1"}))
	}
	enc.Encode(point("firedrill_errors", at(3.5), 2, map[string]string{"class": "timeout"}))
	// protections and scaling are on the timeline but are not faults; the
	// remove at 4 s comes after the scaling at 4.5 s in the file
	enc.Encode(point("firedrill_fault", at(0.5), 1, map[string]string{"fault": "statement_limit", "action": "inject", "target": "mysql", "name": "max_statement_time"}))
	enc.Encode(point("firedrill_fault", at(0.6), 1, map[string]string{"fault": "query_killer", "action": "inject", "target": "mysql"}))
	enc.Encode(point("firedrill_fault", at(2), 1, map[string]string{"fault": "latency", "action": "inject", "target": "memcached-0", "name": "lat"}))
	enc.Encode(point("firedrill_fault", at(3), 1, map[string]string{"fault": "scale", "action": "inject", "target": "processes=8", "name": "autoscaler"}))
	enc.Encode(point("firedrill_fault", at(4.5), 1, map[string]string{"fault": "scale", "action": "inject", "target": "processes=16", "name": "autoscaler"}))
	enc.Encode(point("firedrill_fault", at(4), 1, map[string]string{"fault": "latency", "action": "remove", "target": "memcached-0", "name": "lat"}))
	enc.Encode(point("firedrill_recovered", at(5.5), 1, nil))
	enc.Encode(point("firedrill_recovery_s", at(5.5), 1.5, nil))
	enc.Encode(map[string]any{"type": "Metric", "metric": "cache_fetches"})
	gz.Close()
	f.Close()

	// One HDR interval per second: 1 ms before the fault, 50 ms during.
	hdrPath := filepath.Join(dir, "hdr.ndjson")
	hf, _ := os.Create(hdrPath)
	for s := 0; s < 6; s++ {
		h := hdrhistogram.New(1, 60_000_000, 3)
		v := int64(1000)
		if s >= 2 && s < 4 {
			v = 50_000
		}
		for range 100 {
			h.RecordValue(v)
		}
		b, _ := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		json.NewEncoder(hf).Encode(hdrLine{T: float64(at(float64(s)).UnixNano()) / 1e9, Metric: "cache_fetch", Unit: "us", Encoded: string(b)})
	}
	hf.Close()

	c := newCollector(start)
	if err := c.readSamples(path); err != nil {
		t.Fatal(err)
	}
	if err := c.readHDR(hdrPath); err != nil {
		t.Fatal(err)
	}
	ss := c.series()
	if v := seriesOf(t, ss, reports.SeriesOpRate); len(v) != 6 || v[0] != 100 {
		t.Errorf("op rate = %v", v)
	}
	if v := seriesOf(t, ss, reports.SeriesHitRatio); v[1] != 0.9 {
		t.Errorf("hit ratio = %v", v)
	}
	if v := seriesOf(t, ss, reports.SeriesDBQueryRate); v[2] != 30 {
		t.Errorf("db query rate = %v", v)
	}
	if v := seriesOf(t, ss, reports.SeriesConnections); v[0] != 7 {
		t.Errorf("connections summed over processes = %v", v)
	}
	if v := seriesOf(t, ss, reports.SeriesErrorRate); v[3] != 2 || v[0] != 0 {
		t.Errorf("errors = %v", v)
	}
	p99 := seriesOf(t, ss, reports.SeriesLatencyP99)
	if math.Abs(float64(p99[0])-1) > 0.01 || math.Abs(float64(p99[2])-50) > 0.1 {
		t.Errorf("p99 = %v", p99)
	}
	if len(c.events) != 6 || c.events[2].At != 2 || c.events[5].Action != "remove" || c.events[0].Fault != "statement_limit" {
		t.Errorf("events = %+v", c.events)
	}
	ph := c.phases(ss, 6)
	if len(ph) != 3 || ph[0].Name != "before" || ph[1].Name != "during latency memcached-0" || ph[2].Name != "after" {
		t.Fatalf("phases = %+v", ph)
	}
	if got := ph[1].Summary[reports.SeriesLatencyP99+"_mean"]; math.Abs(got-50) > 0.1 {
		t.Errorf("p99 during the fault = %v", got)
	}
	if got := ph[0].Summary[reports.SeriesLatencyP99+"_mean"]; math.Abs(got-1) > 0.01 {
		t.Errorf("p99 before the fault = %v", got)
	}
	if ph[2].Summary[reports.SummaryRecovered] != 1 || ph[2].Summary[reports.SummaryRecovery] != 1.5 {
		t.Errorf("recovery in the after phase = %v", ph[2].Summary)
	}
	h, err := reports.MergeHistograms(ph[1].Histograms["cache_fetch"])
	if err != nil {
		t.Fatal(err)
	}
	if n, err := h.Count(); err != nil || n != 200 {
		t.Errorf("the fault window's histogram holds %d samples (%v), want the 200 of seconds 2 and 3", n, err)
	}
}

func TestReadThresholdsBothForms(t *testing.T) {
	path := filepath.Join(t.TempDir(), "summary.json")
	os.WriteFile(path, []byte(`{"metrics":{"b":{"count":7,"thresholds":{"count>0":false}},"a":{"thresholds":{"p(99)<5":true,"max<9":{"ok":true}}}}}`), 0o644)
	ths, err := readThresholds(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []reports.Threshold{{Metric: "a", Expression: "max<9", OK: true}, {Metric: "a", Expression: "p(99)<5", OK: false}, {Metric: "b", Expression: "count>0", OK: true}}
	if len(ths) != 3 {
		t.Fatalf("thresholds = %+v", ths)
	}
	if ths[2].Value == nil || *ths[2].Value != 7 {
		t.Errorf("count>0 judged %v, want 7", ths[2].Value)
	}
	for i := range want {
		ths[i].Value = nil
		if ths[i] != want[i] {
			t.Errorf("threshold %d = %+v, want %+v", i, ths[i], want[i])
		}
	}
}
