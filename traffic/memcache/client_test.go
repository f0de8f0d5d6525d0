package memcache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Client tests against scripted servers on 127.0.0.1:0 inside the test:
// they check protocol logic (requests, replies, pool, timeouts, breaker),
// not memcached; integration_test.go runs against a real memcached.

// scripted is a server that answers each request with reply(request line,
// data block or nil). An empty reply answers nothing (the client waits);
// hang makes it read requests and never answer.
type scripted struct {
	ln      net.Listener
	addr    string
	accepts atomic.Int64
	hang    atomic.Bool
	mu      sync.Mutex
	conns   []net.Conn
	reply   func(line string, data []byte) string
}

func newScripted(t *testing.T, reply func(line string, data []byte) string) *scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{ln: ln, addr: ln.Addr().String(), reply: reply}
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *scripted) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
}

func (s *scripted) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepts.Add(1)
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		go s.handle(c)
	}
}

func (s *scripted) handle(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		l = strings.TrimSuffix(l, "\r\n")
		var data []byte
		if n := dataLen(l); n >= 0 {
			data = make([]byte, n+2)
			if _, err := io.ReadFull(r, data); err != nil {
				return
			}
			data = data[:n]
		}
		if s.hang.Load() {
			continue
		}
		if out := s.reply(l, data); out != "" {
			if _, err := c.Write([]byte(out)); err != nil {
				return
			}
		}
	}
}

// dataLen is the length of the data block following a storage command.
func dataLen(l string) int {
	f := strings.Fields(l)
	switch {
	case len(f) >= 5 && (f[0] == "set" || f[0] == "add"):
		n, _ := strconv.Atoi(f[4])
		return n
	case len(f) >= 3 && f[0] == "ms":
		n, _ := strconv.Atoi(f[2])
		return n
	}
	return -1
}

// kv is a scripted reply function that behaves as a tiny cache.
type kv struct {
	mu sync.Mutex
	m  map[string]string
}

func newKV(pairs ...string) *kv {
	k := &kv{m: map[string]string{}}
	for i := 0; i+1 < len(pairs); i += 2 {
		k.m[pairs[i]] = pairs[i+1]
	}
	return k
}

func (k *kv) reply(l string, data []byte) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := strings.Fields(l)
	var b strings.Builder
	switch f[0] {
	case "get":
		for _, key := range f[1:] {
			if v, ok := k.m[key]; ok {
				fmt.Fprintf(&b, "VALUE %s 0 %d\r\n%s\r\n", key, len(v), v)
			}
		}
		b.WriteString("END\r\n")
	case "mg":
		v, ok := k.m[f[1]]
		if !ok {
			return "EN" + opaque(f[2:]) + "\r\n"
		}
		fmt.Fprintf(&b, "VA %d%s\r\n%s\r\n", len(v), opaque(f[2:]), v)
	case "set":
		k.m[f[1]] = string(data)
		return "STORED\r\n"
	case "ms":
		k.m[f[1]] = string(data)
		return "HD" + opaque(f[3:]) + "\r\n"
	case "add":
		if _, ok := k.m[f[1]]; ok {
			return "NOT_STORED\r\n"
		}
		k.m[f[1]] = string(data)
		return "STORED\r\n"
	case "delete":
		if _, ok := k.m[f[1]]; !ok {
			return "NOT_FOUND\r\n"
		}
		delete(k.m, f[1])
		return "DELETED\r\n"
	default:
		return "ERROR\r\n"
	}
	return b.String()
}

// opaque is the O flag among a meta command's flags as memcached echoes it
// in the reply (" O<token>"), or "".
func opaque(flags []string) string {
	for _, f := range flags {
		if strings.HasPrefix(f, "O") {
			return " " + f
		}
	}
	return ""
}

func newClient(t *testing.T, addrs []string, opts ...Option) *Client {
	t.Helper()
	c, err := New(addrs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// refusedAddr is a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	_ = ln.Close()
	return a
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

var bg = context.Background()

func TestCommands(t *testing.T) {
	s := newScripted(t, newKV("k1", "v1").reply)
	c := newClient(t, []string{s.addr})
	if v, err := c.Get(bg, "k1"); err != nil || string(v) != "v1" {
		t.Fatalf("Get k1 = %q, %v", v, err)
	}
	if _, err := c.Get(bg, "nope"); err != ErrCacheMiss {
		t.Fatalf("Get nope: %v, want ErrCacheMiss", err)
	}
	if err := c.Set(bg, "k2", []byte("two"), 60); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 16)
	if v, err := c.GetInto(bg, "k2", buf); err != nil || string(v) != "two" || &v[0] != &buf[:1][0] {
		t.Fatalf("GetInto k2 = %q, %v (or not into buf)", v, err)
	}
	if err := c.Add(bg, "k2", []byte("x"), 0); err != ErrNotStored {
		t.Fatalf("Add existing: %v, want ErrNotStored", err)
	}
	if err := c.Add(bg, "k3", []byte("three"), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(bg, "k3"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(bg, "k3"); err != nil {
		t.Fatalf("Delete missing: %v, want nil", err)
	}
	if _, err := c.Get(bg, "k3"); err != ErrCacheMiss {
		t.Fatalf("Get deleted: %v", err)
	}
	if err := c.MetaSet(bg, "m", []byte("meta"), 5); err != nil {
		t.Fatal(err)
	}
	if r, err := c.MetaGet(bg, "m", 0, 0); err != nil || !r.Found || string(r.Value) != "meta" {
		t.Fatalf("MetaGet = %+v, %v", r, err)
	}
	if err := c.Set(bg, "bad key", []byte("x"), 0); err != ErrMalformedKey {
		t.Fatalf("Set with a space: %v, want ErrMalformedKey", err)
	}
	if got := s.accepts.Load(); got != 1 {
		t.Errorf("%d connections for sequential calls, want 1 (reused)", got)
	}
}

// The request bytes on the wire.
func TestRequestFormat(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	s := newScripted(t, func(l string, data []byte) string {
		mu.Lock()
		lines = append(lines, l+"|"+string(data))
		mu.Unlock()
		switch {
		case strings.HasPrefix(l, "mg"):
			return "EN\r\n"
		case strings.HasPrefix(l, "ms"):
			return "HD\r\n"
		case strings.HasPrefix(l, "get"):
			return "END\r\n"
		}
		return "STORED\r\n"
	})
	c := newClient(t, []string{s.addr})
	_ = c.Set(bg, "k", []byte("abc"), 300)
	_, _ = c.MetaGet(bg, "k", 3, 0)
	_, _ = c.MetaGet(bg, "k", 0, 30)
	_ = c.MetaSet(bg, "k", []byte("xy"), 7)
	_ = c.GetMulti(bg, []string{"a", "b"}, func(string, []byte) {})
	want := []string{"set k 0 300 3|abc", "mg k v t N3|", "mg k v t R30|", "ms k 2 T7|xy", "get a b|"}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// Two servers: each key lands on its ring server; GetMulti asks each once
// and returns every hit; with one server down it still returns the other's
// hits and the down server's error.
func TestGetMulti(t *testing.T) {
	var reqs [2]atomic.Int64
	data := newKV()
	var ss [2]*scripted
	for i := range ss {
		ss[i] = newScripted(t, func(l string, d []byte) string {
			if strings.HasPrefix(l, "get ") {
				reqs[i].Add(1)
			}
			return data.reply(l, d)
		})
	}
	c := newClient(t, []string{ss[0].addr, ss[1].addr})
	var keys []string
	perServer := [2]int{}
	hitsOn0 := 0
	for i := 0; i < 40; i++ {
		k := "key" + strconv.Itoa(i)
		keys = append(keys, k)
		perServer[c.ServerIndex(k)]++
		if i%4 != 3 { // a quarter are misses
			if c.ServerIndex(k) == 0 {
				hitsOn0++
			}
			if err := c.Set(bg, k, []byte("v"+k), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if perServer[0] == 0 || perServer[1] == 0 {
		t.Fatalf("keys all on one server: %v", perServer)
	}
	for _, meta := range []bool{false, true} {
		got := map[string]string{}
		fn := func(k string, v []byte) { got[k] = string(v) }
		var err error
		if meta {
			err = c.MetaGetMulti(bg, keys, fn)
		} else {
			err = c.GetMulti(bg, keys, fn)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 30 {
			t.Fatalf("meta=%v: %d hits, want 30", meta, len(got))
		}
		for k, v := range got {
			if v != "v"+k {
				t.Fatalf("meta=%v: %s = %q", meta, k, v)
			}
		}
	}
	if reqs[0].Load() != 1 || reqs[1].Load() != 1 {
		t.Fatalf("multi-get requests per server %d, %d; want 1, 1", reqs[0].Load(), reqs[1].Load())
	}

	// server 1 goes away: its keys fail, server 0's are still read
	ss[1].close()
	c2 := newClient(t, []string{ss[0].addr, ss[1].addr})
	got := 0
	err := c2.GetMulti(bg, keys, func(k string, _ []byte) {
		got++
		if c2.ServerIndex(k) != 0 {
			t.Errorf("hit %s from the closed server", k)
		}
	})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v, want connection refused", err)
	}
	if got != hitsOn0 {
		t.Fatalf("%d hits from the live server, want %d", got, hitsOn0)
	}
}

// A server that accepts and never answers: the round trip ends at the
// client timeout with a timeout error, and the connection is discarded.
func TestTimeoutDiscardsConn(t *testing.T) {
	s := newScripted(t, newKV("k", "v").reply)
	c := newClient(t, []string{s.addr}, WithTimeout(100*time.Millisecond), WithMaxConns(1))
	if _, err := c.Get(bg, "k"); err != nil {
		t.Fatal(err)
	}
	s.hang.Store(true)
	t0 := time.Now()
	_, err := c.Get(bg, "k")
	el := time.Since(t0)
	if !isTimeout(err) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if el < 90*time.Millisecond || el > 2*time.Second {
		t.Fatalf("timed out after %v, want about 100ms", el)
	}
	if n := c.OpenConns(); n != 0 {
		t.Fatalf("%d open conns after a timeout, want 0 (discarded)", n)
	}
	// the slot is free again (max 1 conn) and a new connection is dialled
	s.hang.Store(false)
	ctx, cancel := context.WithTimeout(bg, time.Second)
	defer cancel()
	if v, err := c.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("after timeout: %q, %v", v, err)
	}
	if a := s.accepts.Load(); a != 2 {
		t.Fatalf("%d connections, want 2", a)
	}
}

// A context deadline earlier than the client timeout bounds the round trip.
func TestContextDeadline(t *testing.T) {
	s := newScripted(t, newKV().reply)
	s.hang.Store(true)
	c := newClient(t, []string{s.addr}, WithTimeout(5*time.Second))
	ctx, cancel := context.WithTimeout(bg, 80*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := c.Get(ctx, "k")
	if el := time.Since(t0); !isTimeout(err) || el > 2*time.Second {
		t.Fatalf("err = %v after %v, want a timeout at about 80ms", err, el)
	}
}

// Which errors give the connection back to the pool and which close it.
func TestPoolReleaseOnError(t *testing.T) {
	var mode atomic.Value
	mode.Store("ok")
	s := newScripted(t, func(l string, data []byte) string {
		switch mode.Load().(string) {
		case "miss":
			return "END\r\n"
		case "server error":
			return "SERVER_ERROR out of memory storing object\r\n"
		case "client error":
			return "CLIENT_ERROR bad data chunk\r\n"
		case "garbage":
			return "WHAT\r\n"
		case "extra":
			return "END\r\nEND\r\n" // a reply too many: out of step
		}
		return "VALUE k 0 1\r\nv\r\nEND\r\n"
	})
	c := newClient(t, []string{s.addr}, WithMaxConns(1))
	for _, tc := range []struct {
		mode string
		kept bool
	}{
		{"ok", true}, {"miss", true}, {"server error", true},
		{"client error", false}, {"garbage", false},
	} {
		mode.Store(tc.mode)
		before := s.accepts.Load()
		_, err := c.Get(bg, "k")
		if (tc.mode == "ok") != (err == nil) {
			t.Fatalf("%s: err = %v", tc.mode, err)
		}
		open := c.OpenConns()
		if tc.kept && open != 1 || !tc.kept && open != 0 {
			t.Errorf("%s: %d open conns after the call, want kept=%v", tc.mode, open, tc.kept)
		}
		mode.Store("ok")
		if _, err := c.Get(bg, "k"); err != nil {
			t.Fatalf("%s: next call: %v", tc.mode, err)
		}
		dialled := s.accepts.Load() - before
		if tc.kept && dialled > 1 || !tc.kept && dialled != 1 {
			t.Errorf("%s: %d dials, kept=%v", tc.mode, dialled, tc.kept)
		}
	}

	// a stray reply found before the next request: that request fails
	// as out of step, the conn is dropped, and the one after works
	mode.Store("extra")
	if _, err := c.Get(bg, "k"); err != ErrCacheMiss {
		t.Fatalf("extra: first get %v", err)
	}
	time.Sleep(20 * time.Millisecond) // let the stray reply arrive
	var pe *ProtocolError
	_, err := c.Get(bg, "k")
	if !errors.As(err, &pe) {
		t.Fatalf("request after a stray reply: %v, want a *ProtocolError", err)
	}
	mode.Store("ok")
	if v, err := c.Get(bg, "k"); err != nil || string(v) != "v" {
		t.Fatalf("after a stray reply: %q, %v", v, err)
	}
}

// A connection slot is given back after a dial error.
func TestDialErrorReleasesSlot(t *testing.T) {
	c := newClient(t, []string{refusedAddr(t)}, WithMaxConns(1))
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(bg, time.Second)
		_, err := c.Get(ctx, "k")
		cancel()
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("call %d: %v, want connection refused (not a wait for the slot)", i, err)
		}
	}
}

// blackholed returns a loopback address whose connects never complete: a
// listener with a backlog of 0 whose queue is full and never accepted, so
// the kernel drops further SYNs, as a firewall dropping packets does.
func blackholed(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for i := 0; i < 8; i++ {
		nc, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			if isTimeout(err) {
				return addr
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
	}
	t.Fatal("could not fill the accept queue: connects still complete")
	return ""
}

// WithDialTimeout bounds a connect that never completes, on the pool and
// the Mux path.
func TestDialTimeoutBlackholed(t *testing.T) {
	addr := blackholed(t)
	for _, mux := range []bool{false, true} {
		c := newClient(t, []string{addr}, WithDialTimeout(150*time.Millisecond), WithTimeout(10*time.Second), WithMux(mux))
		t0 := time.Now()
		_, err := c.Get(bg, "k")
		el := time.Since(t0)
		var de *dialError
		if !isTimeout(err) || !errors.As(err, &de) {
			t.Fatalf("mux=%v: err = %v, want a dial timeout", mux, err)
		}
		if el < 140*time.Millisecond || el > 1500*time.Millisecond {
			t.Fatalf("mux=%v: dial gave up after %v, want about 150ms", mux, el)
		}
	}
}

// With Mux, the callers waiting for one server's dial are each bounded by
// their own context, not queued behind each other's dials.
func TestMuxDialWaitersBounded(t *testing.T) {
	addr := blackholed(t)
	c := newClient(t, []string{addr}, WithDialTimeout(300*time.Millisecond), WithMux(true))
	var wg sync.WaitGroup
	var slow atomic.Int64
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			_, err := c.Get(bg, "k")
			if err == nil {
				t.Error("no error from a blackholed server")
			}
			if time.Since(t0) > 1500*time.Millisecond {
				slow.Add(1)
			}
		}()
	}
	wg.Wait()
	if slow.Load() > 0 {
		t.Fatalf("%d of 8 concurrent callers waited more than 1.5s for a 300ms dial", slow.Load())
	}
}

func TestMux(t *testing.T) {
	s := newScripted(t, newKV("a", "1").reply)
	c := newClient(t, []string{s.addr}, WithMux(true))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				k := fmt.Sprintf("g%d-%d", g, i)
				if err := c.Set(bg, k, []byte(k), 0); err != nil {
					t.Error(err)
					return
				}
				if v, err := c.Get(bg, k); err != nil || string(v) != k {
					t.Errorf("Get %s = %q, %v", k, v, err)
					return
				}
			}
			if _, err := c.Get(bg, fmt.Sprintf("missing%d", g)); err != ErrCacheMiss {
				t.Errorf("miss: %v", err)
			}
		}(g)
	}
	wg.Wait()
	if a := s.accepts.Load(); a != 1 {
		t.Fatalf("%d connections, want 1 multiplexed", a)
	}
}

// Through the Client, a Mux request times out on its own, at its own
// deadline: the requests sent after it time out at theirs, not with it,
// and the connection stays (a hung server drops the requests; the answer
// to a later one skips them).
func TestMuxTimeoutFailsAlone(t *testing.T) {
	s := newScripted(t, newKV("a", "1").reply)
	c := newClient(t, []string{s.addr}, WithMux(true), WithTimeout(400*time.Millisecond))
	if _, err := c.Get(bg, "a"); err != nil {
		t.Fatal(err)
	}
	s.hang.Store(true)
	t0 := time.Now()
	var wg sync.WaitGroup
	done := make([]time.Duration, 6)
	call := func(i int) {
		defer wg.Done()
		if _, err := c.Get(bg, "a"); !isTimeout(err) {
			t.Errorf("call %d: %v, want a timeout", i, err)
		}
		done[i] = time.Since(t0)
	}
	wg.Add(1)
	go call(0)
	time.Sleep(250 * time.Millisecond)
	for i := 1; i < 6; i++ {
		wg.Add(1)
		go call(i)
	}
	wg.Wait()
	if done[0] < 400*time.Millisecond || done[0] > 600*time.Millisecond {
		t.Errorf("first call done after %v, want at its timeout (400ms)", done[0])
	}
	for i := 1; i < 6; i++ {
		if done[i] < 650*time.Millisecond {
			t.Errorf("call %d done after %v, before its own timeout (650ms)", i, done[i])
		}
	}
	s.hang.Store(false)
	if v, err := c.Get(bg, "a"); err != nil || string(v) != "1" {
		t.Fatalf("after the timeouts: %q, %v", v, err)
	}
	if a := s.accepts.Load(); a != 1 {
		t.Fatalf("%d connections, want 1 (kept through the timeouts)", a)
	}
}
