//go:build integration

package container_test

import (
	"bufio"
	"context"
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
	envtest.Main(m, func(e *environments.Env) { env = e }, environments.WithMemcached(2))
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
