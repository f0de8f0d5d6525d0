package toxiproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiserver "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/firedrill-dev/firedrill/faults"
)

// startToxiproxy runs the real Toxiproxy API server (the pinned module, not
// a fake) in this process on a free loopback port and returns its URL.
func startToxiproxy(t *testing.T) string {
	t.Helper()
	port := freePort(t)
	srv := toxiserver.NewServer(toxiserver.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	go srv.Listen("127.0.0.1", strconv.Itoa(port))
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/version")
		if err == nil {
			resp.Body.Close()
			return base
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("toxiproxy did not start on %s", base)
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

// createProxy makes a proxy through the API, as the harness does.
func createProxy(t *testing.T, base, name, upstream string) string {
	t.Helper()
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	body := `{"name":"` + name + `","listen":"` + listen + `","upstream":"` + upstream + `","enabled":true}`
	resp, err := http.Post(base+"/proxies", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create proxy: status %d", resp.StatusCode)
	}
	return listen
}

// roundTrip measures one line's round trip through addr.
func roundTrip(addr string) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "ping\n" {
		return 0, errors.New("bad echo " + line)
	}
	return time.Since(start), nil
}

type events struct {
	mu  sync.Mutex
	got []faults.Event
}

func (e *events) Record(ev faults.Event) { e.mu.Lock(); e.got = append(e.got, ev); e.mu.Unlock() }

func TestToxicsAgainstRealToxiproxy(t *testing.T) {
	base := startToxiproxy(t)
	listen := createProxy(t, base, "memcached-0", echoServer(t))
	rec := &events{}
	c, err := New(base, WithRecorder(rec), WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	before, err := roundTrip(listen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddToxic(ctx, "memcached-0", Toxic{Type: "latency", Attributes: map[string]any{"latency": 200.0}}); err != nil {
		t.Fatal(err)
	}
	with, err := roundTrip(listen)
	if err != nil {
		t.Fatal(err)
	}
	if with < 200*time.Millisecond || with-before < 150*time.Millisecond {
		t.Fatalf("latency toxic: round trip %v (before %v), want +200ms", with, before)
	}
	if _, err := c.UpdateToxic(ctx, "memcached-0", "latency_downstream", Update{Attributes: map[string]any{"latency": 400}}); err != nil {
		t.Fatal(err)
	}
	if with, _ = roundTrip(listen); with < 400*time.Millisecond {
		t.Fatalf("updated latency toxic: round trip %v, want >= 400ms", with)
	}

	if err := c.Disable(ctx, "memcached-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(listen); err == nil {
		t.Fatal("disabled proxy still answers")
	}

	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatalf("second cleanup: %v", err)
	}
	after, err := roundTrip(listen)
	if err != nil {
		t.Fatalf("after cleanup: %v", err)
	}
	if after > 150*time.Millisecond {
		t.Fatalf("after cleanup round trip %v, toxic still there?", after)
	}
	p, err := c.Proxy(ctx, "memcached-0")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Toxics) != 0 || !p.Enabled || len(c.Added()) != 0 {
		t.Fatalf("after cleanup: %+v added=%v", p, c.Added())
	}

	want := []faults.Event{
		{Fault: "latency", Action: faults.Inject, Target: "memcached-0", Name: "latency_downstream"},
		{Fault: "latency", Action: faults.Inject, Target: "memcached-0", Name: "latency_downstream"},
		{Fault: "partition", Action: faults.Inject, Target: "memcached-0"},
		{Fault: "latency", Action: faults.Remove, Target: "memcached-0", Name: "latency_downstream"},
		{Fault: "partition", Action: faults.Remove, Target: "memcached-0"},
	}
	if len(rec.got) != len(want) {
		t.Fatalf("events %+v, want %+v", rec.got, want)
	}
	for i := range want {
		if rec.got[i] != want[i] {
			t.Fatalf("event %d = %+v, want %+v", i, rec.got[i], want[i])
		}
	}
}

func TestEveryToxicTypeIsAccepted(t *testing.T) {
	base := startToxiproxy(t)
	createProxy(t, base, "p", echoServer(t))
	c, _ := New(base)
	ctx := context.Background()
	attrs := map[string]map[string]any{
		"latency":    {"latency": 10, "jitter": 5},
		"bandwidth":  {"rate": 100},
		"slow_close": {"delay": 10},
		"timeout":    {"timeout": 0},
		"reset_peer": {"timeout": 10},
		"limit_data": {"bytes": 1000},
		"slicer":     {"average_size": 10, "size_variation": 5, "delay": 10},
	}
	for _, typ := range ToxicTypes() {
		for _, stream := range []string{Upstream, Downstream} {
			got, err := c.AddToxic(ctx, "p", Toxic{Type: typ, Stream: stream, Toxicity: Float(0.5), Attributes: attrs[typ]})
			if err != nil {
				t.Fatalf("%s/%s: %v", typ, stream, err)
			}
			if got.Name != typ+"_"+stream || got.Stream != stream {
				t.Fatalf("%s/%s: got %+v", typ, stream, got)
			}
		}
	}
	if n := len(c.Added()); n != 2*len(ToxicTypes()) {
		t.Fatalf("added %d", n)
	}
	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := c.Proxy(ctx, "p")
	if len(p.Toxics) != 0 {
		t.Fatalf("left %+v", p.Toxics)
	}
}

func TestValidation(t *testing.T) {
	c, _ := New("http://127.0.0.1:1", WithTimeout(200*time.Millisecond))
	ctx := context.Background()
	cases := []struct {
		name  string
		proxy string
		toxic Toxic
		want  string
	}{
		{"unknown type", "p", Toxic{Type: "lag"}, `unknown toxic type "lag"`},
		{"bad stream", "p", Toxic{Type: "latency", Stream: "sideways"}, `bad stream "sideways"`},
		{"toxicity high", "p", Toxic{Type: "latency", Toxicity: Float(1.5)}, "toxicity 1.5 out of [0, 1]"},
		{"toxicity negative", "p", Toxic{Type: "latency", Toxicity: Float(-0.1)}, "out of [0, 1]"},
		{"unknown attribute", "p", Toxic{Type: "latency", Attributes: map[string]any{"latncy": 1}}, `unknown attribute "latncy"`},
		{"fractional", "p", Toxic{Type: "latency", Attributes: map[string]any{"latency": 1.5}}, "non-negative integer"},
		{"negative", "p", Toxic{Type: "bandwidth", Attributes: map[string]any{"rate": -1}}, "non-negative integer"},
		{"missing proxy", "", Toxic{Type: "latency"}, "missing proxy"},
	}
	for _, tc := range cases {
		_, err := c.AddToxic(ctx, tc.proxy, tc.toxic)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := New("127.0.0.1:8474"); err == nil {
		t.Error("URL without scheme accepted")
	}
}

func TestTimeoutBoundsEveryCall(t *testing.T) {
	// A server that accepts and never answers: the call must return on time.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c, _ := New("http://"+l.Addr().String(), WithTimeout(200*time.Millisecond))
	start := time.Now()
	_, err = c.Proxies(context.Background())
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	start = time.Now()
	if err := c.Disable(context.Background(), "p"); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("disable err %v after %v", err, time.Since(start))
	}
	start = time.Now()
	if err := c.CreateProxy(context.Background(), "p", "127.0.0.1:0", "127.0.0.1:1"); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("create proxy err %v after %v", err, time.Since(start))
	}
	start = time.Now()
	if err := c.Reset(context.Background()); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("reset err %v after %v", err, time.Since(start))
	}
}

func TestNotFound(t *testing.T) {
	base := startToxiproxy(t)
	c, _ := New(base)
	_, err := c.AddToxic(context.Background(), "nope", Toxic{Type: "latency"})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("err %v", err)
	}
	if err := c.RemoveToxic(context.Background(), "nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove err %v", err)
	}
}

// CreateProxy makes a proxy that carries traffic; Reset removes toxics this
// client did not add and enables proxies it did not disable.
func TestCreateProxyAndReset(t *testing.T) {
	base := startToxiproxy(t)
	ctx := context.Background()
	c, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	if err := c.CreateProxy(ctx, "made", listen, echoServer(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateProxy(ctx, "made", "127.0.0.1:0", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), `create proxy "made"`) {
		t.Errorf("creating a proxy twice: %v", err)
	}
	if err := c.CreateProxy(ctx, "", listen, "127.0.0.1:1"); err == nil {
		t.Error("a proxy without a name was accepted")
	}
	if _, err := roundTrip(listen); err != nil {
		t.Fatalf("round trip through the created proxy: %v", err)
	}
	rec := &events{}
	other, _ := New(base, WithRecorder(rec))
	if _, err := other.AddToxic(ctx, "made", Toxic{Type: "latency", Attributes: map[string]any{"latency": 1000}}); err != nil {
		t.Fatal(err)
	}
	if err := other.Disable(ctx, "made"); err != nil {
		t.Fatal(err)
	}
	if err := c.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := c.Proxy(ctx, "made")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enabled || len(p.Toxics) != 0 {
		t.Errorf("after Reset: enabled=%v toxics=%v", p.Enabled, p.Toxics)
	}
	if d, err := roundTrip(listen); err != nil || d > 500*time.Millisecond {
		t.Errorf("round trip after Reset: %v %v", d, err)
	}
	// What the other client added is gone: its Cleanup has nothing left to
	// undo and does not fail.
	if err := other.Cleanup(ctx); err != nil {
		t.Errorf("cleanup after reset: %v", err)
	}
	if len(other.Added()) != 0 {
		t.Errorf("still recorded as added: %v", other.Added())
	}
}
