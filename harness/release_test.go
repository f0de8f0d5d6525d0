package harness

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGenerator answers the parts of k6's REST API that releaseGenerators
// calls: paused before its run, a setup() that takes setupTakes, and the
// setup data and resume it is handed.
type fakeGenerator struct {
	setupTakes time.Duration
	mu         sync.Mutex
	gotData    string
	resumed    bool
}

func (f *fakeGenerator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/status":
		_, _ = io.WriteString(w, `{"data":{"attributes":{"status":4,"paused":true}}}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/setup":
		time.Sleep(f.setupTakes)
		_, _ = io.WriteString(w, `{"data":{"attributes":{"data":{"fillWork":42}}}}`)
	case r.Method == http.MethodPut && r.URL.Path == "/v1/setup":
		f.mu.Lock()
		f.gotData = string(body)
		f.mu.Unlock()
		_, _ = io.WriteString(w, `{}`)
	case r.Method == http.MethodPatch && r.URL.Path == "/v1/status":
		f.mu.Lock()
		f.resumed = strings.Contains(string(body), `"paused":false`)
		f.mu.Unlock()
		_, _ = io.WriteString(w, `{}`)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

// A drill's setup() (seeding, warming) outlasts the status calls' timeout:
// the generators are still released, and generator 1 gets generator 0's
// setup data. Before, the setup call carried the status calls' 10 s
// timeout, and ddl-storm and plan-regression on two generators could not
// decide.
func TestReleaseGeneratorsWaitsForALongSetup(t *testing.T) {
	old := statusCallTimeout
	statusCallTimeout = 100 * time.Millisecond
	defer func() { statusCallTimeout = old }()

	g0, g1 := &fakeGenerator{setupTakes: 500 * time.Millisecond}, &fakeGenerator{}
	s0, s1 := httptest.NewServer(g0), httptest.NewServer(g1)
	defer s0.Close()
	defer s1.Close()
	addrs := []string{strings.TrimPrefix(s0.URL, "http://"), strings.TrimPrefix(s1.URL, "http://")}
	done := []chan struct{}{make(chan struct{}), make(chan struct{})}
	var progress strings.Builder
	if err := releaseGenerators(context.Background(), &progress, addrs, done); err != nil {
		t.Fatalf("releaseGenerators with a setup of 500ms and status calls of 100ms: %v", err)
	}
	if g1.gotData != `{"fillWork":42}` {
		t.Errorf("generator 1 got setup data %q, want generator 0's {\"fillWork\":42}", g1.gotData)
	}
	if !g0.resumed || !g1.resumed {
		t.Errorf("resumed: generator 0 %v, generator 1 %v; want both", g0.resumed, g1.resumed)
	}
	if !strings.Contains(progress.String(), "2 released") {
		t.Errorf("progress %q: want the release reported", progress.String())
	}
}
