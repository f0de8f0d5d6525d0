//go:build integration

package memcache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startMemcached runs the host's memcached on a free loopback port for the
// test and kills it at cleanup. A missing binary fails the test: the
// integration suite must not pass without a real server.
func startMemcached(t *testing.T) string {
	t.Helper()
	for attempt := 0; attempt < 3; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if _, ok := runMemcached(t, port); ok {
			return fmt.Sprintf("127.0.0.1:%d", port)
		}
	}
	t.Fatal("could not start memcached")
	return ""
}

// runMemcached starts memcached on port; stop kills it (also run at
// cleanup). ok is false when it did not come up.
func runMemcached(t *testing.T, port int) (stop func(), ok bool) {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Fatalf("memcached not found (apt-get install memcached): %v", err)
	}
	args := []string{"-p", strconv.Itoa(port), "-l", "127.0.0.1", "-U", "0", "-t", "1", "-m", "64"}
	if os.Geteuid() == 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "-u", u.Username)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	out := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start memcached: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		cancel() // kills the process
		<-exited
	}
	t.Cleanup(stop)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; i < 100; i++ {
		select {
		case <-exited:
			t.Logf("memcached on port %d exited: %s", port, out.String())
			return stop, false
		default:
		}
		if nc, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			_ = nc.Close()
			return stop, true
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("memcached on port %d did not come up: %s", port, out.String())
	stop()
	return stop, false
}

type lockedBuf struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

func TestIntegrationCommands(t *testing.T) {
	addr := startMemcached(t)
	for _, mux := range []bool{false, true} {
		t.Run(fmt.Sprintf("mux=%v", mux), func(t *testing.T) {
			c := newClient(t, []string{addr}, WithMux(mux), WithBreaker(3, time.Second))
			ctx := context.Background()
			if err := c.FlushAll(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(ctx, "a"); err != ErrCacheMiss {
				t.Fatalf("get on empty: %v", err)
			}
			if err := c.Set(ctx, "a", []byte("alpha"), 60); err != nil {
				t.Fatal(err)
			}
			if v, err := c.Get(ctx, "a"); err != nil || string(v) != "alpha" {
				t.Fatalf("get a = %q, %v", v, err)
			}
			big := make([]byte, 200<<10) // larger than the read buffer
			for i := range big {
				big[i] = byte('a' + i%26)
			}
			if err := c.Set(ctx, "big", big, 0); err != nil {
				t.Fatal(err)
			}
			if v, err := c.Get(ctx, "big"); err != nil || string(v) != string(big) {
				t.Fatalf("get big: %d bytes, %v", len(v), err)
			}
			if err := c.Add(ctx, "a", []byte("x"), 0); err != ErrNotStored {
				t.Fatalf("add existing: %v", err)
			}
			if err := c.Add(ctx, "b", []byte("beta"), 0); err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, "b"); err != nil {
				t.Fatalf("delete missing: %v", err)
			}
			if _, err := c.Get(ctx, "b"); err != ErrCacheMiss {
				t.Fatalf("get deleted: %v", err)
			}
			// a value over memcached's item size limit: an error reply,
			// not a broken connection
			huge := make([]byte, 2<<20)
			var se *ServerError
			if err := c.Set(ctx, "huge", huge, 0); !errors.As(err, &se) {
				t.Fatalf("set 2 MiB: %v, want a SERVER_ERROR reply", err)
			}
			if v, err := c.Get(ctx, "a"); err != nil || string(v) != "alpha" {
				t.Fatalf("after an error reply: %q, %v", v, err)
			}
			if c.BreakerOpens() != 0 {
				t.Fatal("breaker opened on answers")
			}
		})
	}
}

func TestIntegrationGetMulti(t *testing.T) {
	addr := startMemcached(t)
	c := newClient(t, []string{addr})
	ctx := context.Background()
	var keys []string
	for i := 0; i < 300; i++ {
		k := "multi:" + strconv.Itoa(i)
		keys = append(keys, k)
		if i%3 != 0 {
			if err := c.Set(ctx, k, []byte("v"+strconv.Itoa(i)), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, meta := range []bool{false, true} {
		got := map[string]string{}
		fn := func(k string, v []byte) { got[k] = string(v) }
		var err error
		if meta {
			err = c.MetaGetMulti(ctx, keys, fn)
		} else {
			err = c.GetMulti(ctx, keys, fn)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 200 {
			t.Fatalf("meta=%v: %d hits, want 200", meta, len(got))
		}
		for i, k := range keys {
			v, ok := got[k]
			if ok != (i%3 != 0) || ok && v != "v"+strconv.Itoa(i) {
				t.Fatalf("meta=%v: %s = %q (hit %v)", meta, k, v, ok)
			}
		}
	}
}

// Leases: with N, the first reader of a missing key wins (W) and gets an
// empty placeholder; the next sees Z (contended) until the winner sets.
func TestIntegrationMetaGetLease(t *testing.T) {
	addr := startMemcached(t)
	c := newClient(t, []string{addr})
	ctx := context.Background()
	first, err := c.MetaGet(ctx, "lease", 30, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Found || !first.Won || first.Contended || len(first.Value) != 0 {
		t.Fatalf("first caller: %+v, want the win on an empty placeholder", first)
	}
	second, err := c.MetaGet(ctx, "lease", 30, 0)
	if err != nil {
		t.Fatal(err)
	}
	if second.Won || !second.Contended || len(second.Value) != 0 {
		t.Fatalf("second caller: %+v, want contended without the win", second)
	}
	if err := c.MetaSet(ctx, "lease", []byte("filled"), 60); err != nil {
		t.Fatal(err)
	}
	third, err := c.MetaGet(ctx, "lease", 30, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !third.Found || third.Won || third.Contended || string(third.Value) != "filled" || third.TTL <= 0 || third.TTL > 60 {
		t.Fatalf("after the fill: %+v, want the value with a TTL", third)
	}
	// without N a miss is a plain miss
	if r, err := c.MetaGet(ctx, "nolease", 0, 0); err != nil || r.Found {
		t.Fatalf("plain miss: %+v, %v", r, err)
	}
	// R: the first reader seeing a TTL under the threshold wins a refresh
	if err := c.MetaSet(ctx, "early", []byte("v"), 5); err != nil {
		t.Fatal(err)
	}
	r1, err := c.MetaGet(ctx, "early", 0, 30)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.MetaGet(ctx, "early", 0, 30)
	if err != nil {
		t.Fatal(err)
	}
	if !r1.Won || r2.Won || !r2.Contended || string(r2.Value) != "v" {
		t.Fatalf("recache: first %+v, second %+v; want the first to win, the second to keep the value", r1, r2)
	}
}

func TestIntegrationMux(t *testing.T) {
	addr := startMemcached(t)
	m, err := DialMux(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := NewMuxReq()
			for i := 0; i < 200; i++ {
				k := fmt.Sprintf("mux:%d:%d", g, i)
				r.Key, r.Set, r.Value, r.TTL = k, true, []byte(k), 0
				if err := m.Do(ctx, r); err != nil {
					t.Errorf("set %s: %v", k, err)
					return
				}
				r.Key, r.Set, r.Value = k, false, nil
				if err := m.Do(ctx, r); err != nil || !r.Found || string(r.Value) != k {
					t.Errorf("get %s: found %v %q, %v", k, r.Found, r.Value, err)
					return
				}
			}
			r.Key, r.Set = fmt.Sprintf("mux:missing:%d", g), false
			if err := m.Do(ctx, r); err != nil || r.Found {
				t.Errorf("miss: found %v, %v", r.Found, err)
			}
		}(g)
	}
	wg.Wait()
}

// A Mux with a timeout against a real server while callers give up at
// random moments (some before their reply, some while it is being read) and
// reuse their requests at once: every answer still lands in its own
// request, and the connection stays in step.
func TestIntegrationMuxGiveUpsKeepStep(t *testing.T) {
	addr := startMemcached(t)
	m, err := dialMux(context.Background(), addr, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var wg sync.WaitGroup
	var gaveUp, answered atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := NewMuxReq()
			for i := 0; i < 300; i++ {
				k := fmt.Sprintf("giveup:%d:%d", g, i)
				r.Key, r.Set, r.Value, r.TTL = k, true, []byte(k), 0
				if err := m.Do(context.Background(), r); err != nil {
					t.Errorf("set %s: %v", k, err)
					return
				}
				// a get whose caller gives up after 0 to 60 µs
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%4)*20*time.Microsecond)
				r.Key, r.Set, r.Value = fmt.Sprintf("giveup:%d:%d", g, i/2), false, nil
				err := m.Do(ctx, r)
				cancel()
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					gaveUp.Add(1)
				case err != nil || !r.Found || string(r.Value) != r.Key:
					t.Errorf("get %s: found %v %q, %v", r.Key, r.Found, r.Value, err)
					return
				default:
					answered.Add(1)
				}
				// the same request at once, waiting for its answer
				r.Key = k
				if err := m.Do(context.Background(), r); err != nil || !r.Found || string(r.Value) != k {
					t.Errorf("get %s after a give-up: found %v %q, %v", k, r.Found, r.Value, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	t.Logf("gets given up %d, answered %d", gaveUp.Load(), answered.Load())
	if gaveUp.Load() == 0 {
		t.Error("no caller gave up: the test did not test that")
	}
	if m.dead.Load() {
		t.Fatalf("Mux failed: %v", m.failure())
	}
}

// The breaker against a real server that goes away and comes back.
func TestIntegrationBreakerServerDown(t *testing.T) {
	for _, mux := range []bool{false, true} {
		t.Run(fmt.Sprintf("mux=%v", mux), func(t *testing.T) { breakerServerDown(t, mux) })
	}
}

func breakerServerDown(t *testing.T, mux bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	stop, ok := runMemcached(t, port)
	if !ok {
		t.Fatal("memcached did not start")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := newClient(t, []string{addr}, WithBreaker(2, 300*time.Millisecond), WithTimeout(200*time.Millisecond), WithMux(mux))
	ctx := context.Background()
	if err := c.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	stop()
	// the pooled connection is reset, then connects are refused
	for i := 0; i < 2; i++ {
		if _, err := c.Get(ctx, "k"); err == nil || errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("call %d to a stopped server: %v", i, err)
		}
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("after 2 failures: %v, want ErrBreakerOpen", err)
	}
	if _, ok := runMemcached(t, port); !ok {
		t.Fatal("memcached did not restart on its port")
	}
	time.Sleep(350 * time.Millisecond)
	// the trial call reaches the new (empty) server and closes the breaker
	if _, err := c.Get(ctx, "k"); err != ErrCacheMiss {
		t.Fatalf("trial call: %v, want a miss from the restarted server", err)
	}
	if err := c.Set(ctx, "k", []byte("v2"), 0); err != nil {
		t.Fatalf("after closing: %v", err)
	}
	if c.BreakerOpens() != 1 || c.BreakersOpen() != 0 {
		t.Fatalf("opens %d, open now %d; want 1, 0", c.BreakerOpens(), c.BreakersOpen())
	}
}
