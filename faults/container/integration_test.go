//go:build integration

package container_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/environments/envtest"
	"github.com/firedrill-dev/firedrill/faults"
	"github.com/firedrill-dev/firedrill/faults/container"
)

// A real environment from environments.Up; without Docker the tests fail.
var env *environments.Env

func TestMain(m *testing.M) {
	envtest.Main(m, func(e *environments.Env) { env = e }, environments.WithMemcached(2), environments.WithTier(1))
}

// version asks memcached for its version through addr.
func version(addr string, deadline time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(c, "version\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION") {
		return fmt.Errorf("odd reply %q", line)
	}
	return nil
}

// eventually retries f for up to d: a restarted server needs a moment.
func eventually(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) Record(ev faults.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev.Fault+"/"+string(ev.Action)+"/"+ev.Target)
}

func TestStopPauseKillAndBringBack(t *testing.T) {
	ctx := context.Background()
	rec := &events{}
	in, err := container.New(env.RunID, container.WithRecorder(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Cleanup(ctx)
	srv, other := env.Memcached[0], env.Memcached[1]
	if err := version(srv.ProxyAddr, 2*time.Second); err != nil {
		t.Fatal(err)
	}

	if err := in.Stop(ctx, srv.Name, 0); err != nil {
		t.Fatal(err)
	}
	if err := version(srv.ProxyAddr, time.Second); err == nil {
		t.Fatal("stopped server still answers through its proxy")
	}
	if err := version(other.ProxyAddr, time.Second); err != nil {
		t.Fatalf("other server hit: %v", err)
	}
	if err := in.Start(ctx, srv.Name); err != nil {
		t.Fatal(err)
	}
	if err := eventually(10*time.Second, func() error { return version(srv.ProxyAddr, time.Second) }); err != nil {
		t.Fatalf("not back after start: %v", err)
	}

	if err := in.Pause(ctx, srv.Name); err != nil {
		t.Fatal(err)
	}
	if err := version(srv.ProxyAddr, 500*time.Millisecond); err == nil {
		t.Fatal("paused server answers")
	}
	if err := in.Unpause(ctx, srv.Name); err != nil {
		t.Fatal(err)
	}
	if err := eventually(5*time.Second, func() error { return version(srv.ProxyAddr, time.Second) }); err != nil {
		t.Fatalf("not back after unpause: %v", err)
	}

	if err := in.Kill(ctx, srv.Name, ""); err != nil {
		t.Fatal(err)
	}
	if err := version(srv.ProxyAddr, time.Second); err == nil {
		t.Fatal("killed server answers")
	}
	// Cleanup brings back what is still down.
	if err := in.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := eventually(10*time.Second, func() error { return version(srv.ProxyAddr, time.Second) }); err != nil {
		t.Fatalf("not back after cleanup: %v", err)
	}
	if err := in.Cleanup(ctx); err != nil {
		t.Fatalf("second cleanup: %v", err)
	}
	p, err := in.HostPort(ctx, srv.Name, "11211/tcp")
	if err != nil || p == "" {
		t.Fatalf("host port: %q %v", p, err)
	}

	want := "container_stop/inject/memcached-0 container_stop/remove/memcached-0 container_pause/inject/memcached-0 container_pause/remove/memcached-0 container_kill/inject/memcached-0 container_kill/remove/memcached-0"
	if got := strings.Join(rec.got, " "); got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}
}

func TestRefusesAnotherRunsContainers(t *testing.T) {
	in, err := container.New("fd-not-this-run")
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Stop(context.Background(), "memcached-0", 0); err == nil {
		t.Fatal("stopped a container of another run")
	}
	if err := version(env.Memcached[0].ProxyAddr, 2*time.Second); err != nil {
		t.Fatalf("server disturbed: %v", err)
	}
}

// TestUnreachableDropsSYNs: the tier's proxy stops answering the way a
// security group's drop does (a connect times out, it is not refused), the
// other proxies keep working, and Reachable and Cleanup undo it without
// leaving a container behind.
func TestUnreachableDropsSYNs(t *testing.T) {
	ctx := context.Background()
	if env.Route != environments.RouteNetwork {
		t.Fatalf("traffic route %q: a dropped SYN is only seen on the run's network (docker-proxy accepts on the published ports)", env.Route)
	}
	rec := &events{}
	in, err := container.New(env.RunID, container.WithRecorder(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Cleanup(ctx)
	tier, other := env.Tier[0], env.Memcached[0]
	if err := version(tier.ProxyAddr, 2*time.Second); err != nil {
		t.Fatalf("tier before the fault: %v", err)
	}
	// a connection opened before the fault goes silent with it
	open, err := net.DialTimeout("tcp", tier.ProxyAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	if err := in.Unreachable(ctx, "toxiproxy", tier.ListenPort, tier.Name); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := net.DialTimeout("tcp", tier.ProxyAddr, 500*time.Millisecond)
	if err == nil {
		c.Close()
		t.Fatal("connect to the unreachable tier succeeded")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connect failed with %v, want a timeout (a dropped SYN), not a refusal", err)
	}
	if waited := time.Since(start); waited < 450*time.Millisecond {
		t.Fatalf("connect gave up after %v, want the client's 500 ms timeout", waited)
	}
	_ = open.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := io.WriteString(open, "version\r\n"); err == nil {
		if line, err := bufio.NewReader(open).ReadString('\n'); err == nil {
			t.Fatalf("an open connection still answered %q", line)
		}
	}
	if err := version(other.ProxyAddr, 2*time.Second); err != nil {
		t.Fatalf("%s with the tier cut off: %v", other.Name, err)
	}

	if err := in.Reachable(ctx, "toxiproxy", tier.ListenPort, tier.Name); err != nil {
		t.Fatal(err)
	}
	if err := eventually(5*time.Second, func() error { return version(tier.ProxyAddr, time.Second) }); err != nil {
		t.Fatalf("tier after reachable: %v", err)
	}
	// Cleanup undoes a fault still in place
	if err := in.Unreachable(ctx, "toxiproxy", tier.ListenPort, tier.Name); err != nil {
		t.Fatal(err)
	}
	if err := in.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := eventually(5*time.Second, func() error { return version(tier.ProxyAddr, time.Second) }); err != nil {
		t.Fatalf("tier after cleanup: %v", err)
	}
	want := "unreachable/inject/tier-0 unreachable/remove/tier-0 unreachable/inject/tier-0 unreachable/remove/tier-0"
	rec.mu.Lock()
	got := strings.Join(rec.got, " ")
	rec.mu.Unlock()
	if got != want {
		t.Fatalf("timeline %q, want %q", got, want)
	}
	svcs, err := in.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		if s.Service == "netfilter" {
			t.Fatalf("a rule changer was left behind: %+v", s)
		}
	}
	if err := in.Unreachable(ctx, "toxiproxy", 0, tier.Name); err == nil || !strings.Contains(err.Error(), "port 0") {
		t.Fatalf("port 0: %v", err)
	}
}
