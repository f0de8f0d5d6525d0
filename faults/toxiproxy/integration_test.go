//go:build integration

package toxiproxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/environments/envtest"
	"github.com/firedrill-dev/firedrill/faults/toxiproxy"
)

// The environment every test here uses: real memcached behind the real
// Toxiproxy container, started by environments.Up. Without Docker the tests
// fail rather than skip.
var env *environments.Env

func TestMain(m *testing.M) {
	envtest.Main(m, func(e *environments.Env) { env = e }, environments.WithMemcached(2))
}

// mc runs one memcached text command on a fresh connection and returns the
// reply up to the line "END", "STORED" or a VERSION line, and how long it
// took from the first byte sent.
func mc(addr, cmd string, deadline time.Duration) (string, time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(deadline))
	start := time.Now()
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", 0, err
	}
	r := bufio.NewReader(c)
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), time.Since(start), err
		}
		if line == "END\r\n" || line == "STORED\r\n" || strings.HasPrefix(line, "VERSION") {
			return b.String(), time.Since(start), nil
		}
	}
}

func TestEachToxicHasItsEffect(t *testing.T) {
	ctx := context.Background()
	c, err := toxiproxy.New(env.ToxiproxyURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cleanup(ctx)
	srv := env.Memcached[0]
	proxy, addr := srv.Name, srv.ProxyAddr
	value := strings.Repeat("x", 20000)
	if _, _, err := mc(addr, fmt.Sprintf("set big 0 0 %d\r\n%s\r\n", len(value), value), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	_, base, err := mc(addr, "version\r\n", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, baseGet, err := mc(addr, "get big\r\n", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("baseline: version %v, get 20KB %v", base, baseGet)

	with := func(tx toxiproxy.Toxic, check func(t *testing.T)) {
		t.Run(tx.Type, func(t *testing.T) {
			got, err := c.AddToxic(ctx, proxy, tx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := c.RemoveToxic(ctx, proxy, got.Name); err != nil {
					t.Fatal(err)
				}
				// The machine is shared and noisy: one fast round trip in
				// three tries shows the toxic is gone; a toxic left behind
				// slows every one of them.
				var d time.Duration
				var err error
				for range 3 {
					if _, d, err = mc(addr, "version\r\n", 2*time.Second); err == nil && d <= base+100*time.Millisecond {
						return
					}
				}
				t.Fatalf("after removing %s: %v %v", tx.Type, d, err)
			}()
			check(t)
		})
	}

	with(toxiproxy.Toxic{Type: "latency", Attributes: map[string]any{"latency": 200}}, func(t *testing.T) {
		_, d, err := mc(addr, "version\r\n", 3*time.Second)
		if err != nil || d < 200*time.Millisecond {
			t.Fatalf("round trip %v (%v), want >= 200ms", d, err)
		}
		t.Logf("latency 200ms: round trip %v", d)
	})
	with(toxiproxy.Toxic{Type: "bandwidth", Attributes: map[string]any{"rate": 20}}, func(t *testing.T) {
		// 20 KB at 20 KB/s: about a second.
		_, d, err := mc(addr, "get big\r\n", 5*time.Second)
		if err != nil || d < 700*time.Millisecond {
			t.Fatalf("get 20KB took %v (%v), want ~1s", d, err)
		}
		t.Logf("bandwidth 20KB/s: get 20KB %v", d)
	})
	with(toxiproxy.Toxic{Type: "slicer", Attributes: map[string]any{"average_size": 100, "size_variation": 10, "delay": 2000}}, func(t *testing.T) {
		// ~200 slices of 100 bytes, 2 ms apart: about 0.4 s.
		_, d, err := mc(addr, "get big\r\n", 5*time.Second)
		if err != nil || d < 200*time.Millisecond {
			t.Fatalf("sliced get took %v (%v)", d, err)
		}
		t.Logf("slicer: get 20KB %v", d)
	})
	with(toxiproxy.Toxic{Type: "timeout", Attributes: map[string]any{"timeout": 300}}, func(t *testing.T) {
		// No data passes; the connection is closed after 300 ms.
		reply, d, err := mc(addr, "version\r\n", 3*time.Second)
		if err == nil || reply != "" || d < 250*time.Millisecond || d > 2*time.Second {
			t.Fatalf("reply %q after %v (%v), want nothing and a close after ~300ms", reply, d, err)
		}
		t.Logf("timeout 300ms: %v after %v", err, d)
	})
	with(toxiproxy.Toxic{Type: "reset_peer", Attributes: map[string]any{"timeout": 100}}, func(t *testing.T) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		// The toxic acts once data flows: send a request, then read until
		// the connection breaks.
		_, _ = io.WriteString(c, "version\r\n")
		buf := make([]byte, 100)
		for i := 0; i < 100 && err == nil; i++ {
			_, err = c.Read(buf)
		}
		// Toxiproxy sends a TCP RST; Docker's userland port proxy between
		// the host and the container turns it into a plain close (EOF), so
		// both count, as long as it comes after the toxic's timeout.
		d := time.Since(start)
		if err == nil || (err != io.EOF && !strings.Contains(err.Error(), "reset")) || d < 90*time.Millisecond || d > 2*time.Second {
			t.Fatalf("read after %v: %v, want the connection broken after ~100ms", d, err)
		}
		t.Logf("reset_peer: %v after %v", err, time.Since(start))
	})
	with(toxiproxy.Toxic{Type: "limit_data", Attributes: map[string]any{"bytes": 1000}}, func(t *testing.T) {
		reply, _, err := mc(addr, "get big\r\n", 3*time.Second)
		if err == nil || len(reply) > 1000 {
			t.Fatalf("got %d bytes (%v), want the connection closed after 1000", len(reply), err)
		}
	})
	with(toxiproxy.Toxic{Type: "slow_close", Attributes: map[string]any{"delay": 500}}, func(t *testing.T) {
		// memcached closes on "quit"; the client sees the close 500 ms later.
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		_, _ = io.WriteString(c, "quit\r\n")
		_, err = c.Read(make([]byte, 10))
		if d := time.Since(start); err == nil || d < 400*time.Millisecond {
			t.Fatalf("close seen after %v (%v), want >= 500ms", d, err)
		}
	})

	// Upstream direction and toxicity: a 0-toxicity latency toxic never applies.
	if _, err := c.AddToxic(ctx, proxy, toxiproxy.Toxic{Name: "never", Type: "latency", Stream: toxiproxy.Upstream, Toxicity: toxiproxy.Float(0), Attributes: map[string]any{"latency": 500}}); err != nil {
		t.Fatal(err)
	}
	if _, d, err := mc(addr, "version\r\n", 2*time.Second); err != nil || d > 300*time.Millisecond {
		t.Fatalf("toxicity 0 applied: %v %v", d, err)
	}
	if _, err := c.UpdateToxic(ctx, proxy, "never", toxiproxy.Update{Toxicity: toxiproxy.Float(1)}); err != nil {
		t.Fatal(err)
	}
	if _, d, err := mc(addr, "version\r\n", 2*time.Second); err != nil || d < 500*time.Millisecond {
		t.Fatalf("upstream latency at toxicity 1: %v %v", d, err)
	}

	// Partition: the proxy refuses connections; the other server is untouched.
	if err := c.Disable(ctx, proxy); err != nil {
		t.Fatal(err)
	}
	if _, _, err := mc(addr, "version\r\n", time.Second); err == nil {
		t.Fatal("disabled proxy still answers")
	}
	if _, _, err := mc(env.Memcached[1].ProxyAddr, "version\r\n", time.Second); err != nil {
		t.Fatalf("other server hit by the partition: %v", err)
	}

	if err := c.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, d, err := mc(addr, "version\r\n", 2*time.Second); err != nil || d > base+100*time.Millisecond {
		t.Fatalf("after cleanup: %v %v", d, err)
	}
	ps, err := c.Proxies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if !p.Enabled || len(p.Toxics) != 0 {
			t.Fatalf("after cleanup %s: enabled=%v toxics=%v", p.Name, p.Enabled, p.Toxics)
		}
	}
}
