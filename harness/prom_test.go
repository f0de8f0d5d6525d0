package harness

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"
)

const promText = `# HELP example_requests_total requests answered, by status code
# TYPE example_requests_total counter
example_requests_total{code="200"} 90
example_requests_total{code="503"} 10
# HELP example_workers_busy requests being served
# TYPE example_workers_busy gauge
example_workers_busy 7
# HELP example_request_seconds request latency
# TYPE example_request_seconds histogram
example_request_seconds_bucket{le="0.1"} 95
example_request_seconds_bucket{le="+Inf"} 100
example_request_seconds_sum 4.5
example_request_seconds_count 100
`

func TestTheServicesPrometheusMetricsAreReadSummedOverLabels(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(promText))
	}))
	defer srv.Close()
	l, err := (&promSource{url: srv.URL, client: srv.Client()}).sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"app_example_requests_total": 100, "app_example_request_seconds_sum": 4.5, "app_example_request_seconds_count": 100,
	} {
		if l.Counters[name] != want {
			t.Errorf("counter %s = %v, want %v", name, l.Counters[name], want)
		}
	}
	if l.Gauges["app_example_workers_busy"] != 7 {
		t.Errorf("gauges = %v", l.Gauges)
	}
	bad := httptest.NewServer(http.NotFoundHandler())
	defer bad.Close()
	if _, err := (&promSource{url: bad.URL, client: bad.Client()}).sample(context.Background()); err == nil {
		t.Error("a 404 from the metrics path was read as a sample")
	}
}

// The service's counters join the servers' in checks: a counter's rate and
// a gauge's peak, by the names the readings carried.
func TestAppMetricsInChecks(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), ServersFile)
	var lines []ServerLine
	lines = append(lines, ServerLine{Type: LineSource, Source: "app:app", Tags: map[string]string{"app": "app"}, Interval: 1})
	for i := range 11 {
		lines = append(lines, ServerLine{Type: LineSample, Source: "app:app", T: t0.Add(time.Duration(i) * time.Second),
			Tags:     map[string]string{"app": "app"},
			Counters: map[string]float64{"app_example_requests_total": float64(20 * i)},
			Gauges:   map[string]float64{"app_example_workers_busy": float64(i)}})
	}
	serverFile(t, path, lines)
	c := newCollector(t0)
	if err := c.readServers(path); err != nil {
		t.Fatal(err)
	}
	c.end = 10
	c.servers.finish(t0)
	w := span{0, 10}
	if v, ok := c.metric("app_example_requests_total_rate", nil, w); !ok || !approx(v, 20) {
		t.Errorf("app_example_requests_total_rate = %v (%v), want 20", v, ok)
	}
	if v, ok := c.metric("app_example_workers_busy_peak", map[string]string{"app": "app"}, w); !ok || v != 9 {
		t.Errorf("app_example_workers_busy_peak = %v (%v), want 9", v, ok)
	}
	if _, ok := c.metric("app_example_requests_total_peak", nil, w); ok {
		t.Error("a counter has no _peak: it is a gauge's statistic")
	}
}
