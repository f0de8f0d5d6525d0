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
	"testing"
	"time"
)

// Mux tests against a fake server whose replies the test writes itself,
// when and in what order it wants: late replies, lost requests and a
// server that answers nothing, deterministically.

// metaServer accepts connections and hands each meta command it reads to
// the test (cmds); it answers nothing by itself.
type metaServer struct {
	ln      net.Listener
	addr    string
	accepts atomic.Int64
	cmds    chan *metaCmd
	closed  chan struct{} // at the test's end
	mu      sync.Mutex
	conns   []net.Conn
}

// metaCmd is one command read: "mg <key> v O<tok>" or
// "ms <key> <len> T<ttl> O<tok>" and its data.
type metaCmd struct {
	c        net.Conn
	at       time.Time // when it was read
	verb     string
	key, tok string
	data     []byte
}

func newMetaServer(t *testing.T) *metaServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &metaServer{ln: ln, addr: ln.Addr().String(), cmds: make(chan *metaCmd, 4096), closed: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go s.read(c)
		}
	}()
	t.Cleanup(func() {
		close(s.closed)
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
	})
	return s
}

func (s *metaServer) read(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(l)
		cmd := &metaCmd{c: c, at: time.Now(), verb: f[0], key: f[1]}
		for _, fl := range f[2:] {
			if fl[0] == 'O' {
				cmd.tok = fl[1:]
			}
		}
		if f[0] == "ms" {
			n, _ := strconv.Atoi(f[2])
			cmd.data = make([]byte, n+2)
			if _, err := io.ReadFull(r, cmd.data); err != nil {
				return
			}
			cmd.data = cmd.data[:n]
		}
		s.cmds <- cmd
	}
}

// next returns the next command read, failing the test if none comes.
func (s *metaServer) next(t *testing.T) *metaCmd {
	t.Helper()
	select {
	case c := <-s.cmds:
		return c
	case <-time.After(2 * time.Second):
		t.Fatal("no command reached the server")
		return nil
	}
}

func (c *metaCmd) send(reply string) { _, _ = c.c.Write([]byte(reply)) }

// value answers a get with v.
func (c *metaCmd) value(v string) { c.send(fmt.Sprintf("VA %d O%s\r\n%s\r\n", len(v), c.tok, v)) }

// miss answers a get with a miss.
func (c *metaCmd) miss() { c.send("EN O" + c.tok + "\r\n") }

func dialTestMux(t *testing.T, addr string, timeout time.Duration) *Mux {
	t.Helper()
	m, err := dialMux(context.Background(), addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func getReq(key string) *MuxReq {
	r := NewMuxReq()
	r.Key = key
	return r
}

// start runs m.Do(r) and returns where its error will be.
func start(m *Mux, r *MuxReq) chan error {
	ch := make(chan error, 1)
	go func() { ch <- m.Do(context.Background(), r) }()
	return ch
}

func wait(t *testing.T, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(3 * time.Second):
		t.Fatal("request not answered")
		return nil
	}
}

func wantValue(t *testing.T, what string, r *MuxReq, err error, v string) {
	t.Helper()
	if err != nil || !r.Found || string(r.Value) != v {
		t.Fatalf("%s: found %v %q, %v; want %q", what, r.Found, r.Value, err, v)
	}
}

// One request's reply is late: that request alone times out, at its
// deadline; the requests sent before and after it get their answers on the
// same connection, and the late reply is read and discarded, not written
// into the request its caller reused meanwhile.
func TestMuxLateReplyFailsOnlyItsRequest(t *testing.T) {
	const timeout = 400 * time.Millisecond
	srv := newMetaServer(t)
	m := dialTestMux(t, srv.addr, timeout)
	before, slow, after := getReq("before"), getReq("slow"), getReq("after")

	dBefore := start(m, before)
	cBefore := srv.next(t)
	t0 := time.Now()
	dSlow := start(m, slow)
	cSlow := srv.next(t)
	cBefore.value("B")
	wantValue(t, "before", before, wait(t, dBefore), "B")

	time.Sleep(timeout / 2)
	dAfter := start(m, after)
	cAfter := srv.next(t)

	err := wait(t, dSlow)
	el := time.Since(t0)
	if !isTimeout(err) {
		t.Fatalf("slow: %v, want a timeout", err)
	}
	if el < timeout || el > timeout+300*time.Millisecond {
		t.Fatalf("slow timed out after %v, want at its deadline (%v)", el, timeout)
	}
	select {
	case err := <-dAfter:
		t.Fatalf("after: done (%v) with the slow one, want still waiting", err)
	default:
	}

	// the caller reuses its request at once; then the late reply comes,
	// and the answers after it, in order
	slow.Key = "reused"
	dReused := start(m, slow)
	cReused := srv.next(t)
	cSlow.value("LATE")
	cAfter.value("A")
	cReused.value("R")
	wantValue(t, "after", after, wait(t, dAfter), "A")
	wantValue(t, "reused request", slow, wait(t, dReused), "R")
	if n := len(slow.Done); n != 0 {
		t.Fatalf("%d extra answers signalled to the reused request", n)
	}

	// the connection was kept, in step
	d := start(m, before)
	srv.next(t).miss()
	if err := wait(t, d); err != nil || before.Found {
		t.Fatalf("after the late reply: found %v, %v; want a miss", before.Found, err)
	}
	if m.dead.Load() || srv.accepts.Load() != 1 {
		t.Fatalf("connection failed (dead %v, %d accepts), want kept", m.dead.Load(), srv.accepts.Load())
	}
}

// Tokens match replies to requests: after several requests in a row timed
// out and were reused, each late reply is dropped and each new request
// gets its own; requests a later reply skips (lost on the way) fail at
// their own deadline; a reply whose token is no request's in flight puts
// the stream out of step and fails the Mux.
func TestMuxTokensMatchAfterExpiries(t *testing.T) {
	const timeout = 150 * time.Millisecond
	srv := newMetaServer(t)
	m := dialTestMux(t, srv.addr, timeout)

	var reqs []*MuxReq
	var done []chan error
	var cmds []*metaCmd
	for i := 0; i < 4; i++ {
		r := getReq("k" + strconv.Itoa(i))
		reqs, done = append(reqs, r), append(done, start(m, r))
		cmds = append(cmds, srv.next(t))
	}
	for i := range reqs {
		if err := wait(t, done[i]); !isTimeout(err) {
			t.Fatalf("request %d: %v, want a timeout", i, err)
		}
	}
	var again []*metaCmd
	for i, r := range reqs {
		r.Key = "new" + strconv.Itoa(i)
		done[i] = start(m, r)
		again = append(again, srv.next(t))
	}
	for i, c := range cmds {
		c.value("late" + strconv.Itoa(i))
	}
	for i, c := range again {
		c.value("new" + strconv.Itoa(i))
	}
	for i, r := range reqs {
		wantValue(t, "request "+strconv.Itoa(i), r, wait(t, done[i]), "new"+strconv.Itoa(i))
	}

	// the server answers only the third of three requests
	lost0, lost1, answered := getReq("x0"), getReq("x1"), getReq("x2")
	t0 := time.Now()
	d0 := start(m, lost0)
	srv.next(t)
	d1 := start(m, lost1)
	srv.next(t)
	d2 := start(m, answered)
	srv.next(t).value("X2")
	wantValue(t, "answered", answered, wait(t, d2), "X2")
	if el := time.Since(t0); el >= timeout {
		t.Fatalf("answered after %v, not before the skipped requests' deadline", el)
	}
	for i, d := range []chan error{d0, d1} {
		err := wait(t, d)
		if el := time.Since(t0); !isTimeout(err) || el < timeout {
			t.Fatalf("skipped request %d: %v after %v, want a timeout at its deadline (%v)", i, err, el, timeout)
		}
	}
	if m.dead.Load() || srv.accepts.Load() != 1 {
		t.Fatal("connection failed by lost requests, want kept")
	}

	// an answer to nothing
	r := getReq("y")
	d := start(m, r)
	c := srv.next(t)
	c.send("EN O1\r\n") // token 1: older than any request in flight
	var pe *ProtocolError
	if err := wait(t, d); !errors.As(err, &pe) {
		t.Fatalf("after a reply to no request: %v, want a *ProtocolError", err)
	}
	if !m.dead.Load() {
		t.Fatal("Mux still up after a reply out of step")
	}
}

// A server that answers nothing: each request times out at its own
// deadline while the connection is kept; after the stall limit without a
// reply the connection is failed, and then requests fail fast on the Mux,
// and the Client dials a new one.
func TestMuxStalledServer(t *testing.T) {
	const timeout = 100 * time.Millisecond
	limit := muxStallLimit(timeout)
	srv := newMetaServer(t)
	m := dialTestMux(t, srv.addr, timeout)
	t0 := time.Now()
	r := getReq("k")
	for time.Since(t0) < limit-3*timeout {
		t1 := time.Now()
		err := m.Do(bg, r)
		if el := time.Since(t1); !isTimeout(err) || el < timeout || el > timeout+200*time.Millisecond {
			t.Fatalf("request at %v: %v after %v, want a timeout at %v", t1.Sub(t0), err, el, timeout)
		}
	}
	if m.dead.Load() {
		t.Fatalf("Mux failed after %v without a reply, before the limit (%v)", time.Since(t0), limit)
	}
	for !m.dead.Load() {
		if time.Since(t0) > limit+time.Second {
			t.Fatalf("Mux not failed %v after the last reply (limit %v)", time.Since(t0), limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if el := time.Since(t0); el < limit {
		t.Fatalf("Mux failed after %v, want after the limit (%v)", el, limit)
	}
	t1 := time.Now()
	err := m.Do(bg, r)
	if !isTimeout(err) || time.Since(t1) > 50*time.Millisecond {
		t.Fatalf("on the failed Mux: %v after %v, want its stall error at once", err, time.Since(t1))
	}

	// the Client redials after the stall
	srv2 := newMetaServer(t)
	c := newClient(t, []string{srv2.addr}, WithMux(true), WithTimeout(timeout))
	t0 = time.Now()
	for srv2.accepts.Load() < 2 {
		if time.Since(t0) > limit+time.Second {
			t.Fatalf("no redial %v after the last reply (limit %v)", time.Since(t0), limit)
		}
		if _, err := c.Get(bg, "k"); !isTimeout(err) {
			t.Fatalf("Get: %v, want a timeout", err)
		}
		if srv2.accepts.Load() > 1 && time.Since(t0) < limit {
			t.Fatalf("redialled after %v, before the limit (%v)", time.Since(t0), limit)
		}
	}
}

// A server whose every reply comes later than the timeout (a latency
// fault): every request times out, but replies keep coming, so the
// connection is never failed.
func TestMuxSlowServerKeepsConnection(t *testing.T) {
	const timeout = 100 * time.Millisecond
	srv := newMetaServer(t)
	go func() {
		for {
			select {
			case c := <-srv.cmds:
				time.Sleep(time.Until(c.at.Add(3 * timeout)))
				c.miss()
			case <-srv.closed:
				return
			}
		}
	}()
	c := newClient(t, []string{srv.addr}, WithMux(true), WithTimeout(timeout))
	var wg sync.WaitGroup
	var calls, timeouts atomic.Int64
	stop := time.Now().Add(muxStallLimit(timeout) + 500*time.Millisecond)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				_, err := c.Get(bg, "k")
				calls.Add(1)
				if isTimeout(err) {
					timeouts.Add(1)
				} else {
					t.Errorf("Get: %v, want a timeout", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if calls.Load() < 40 {
		t.Fatalf("%d calls, want about 60", calls.Load())
	}
	if a := srv.accepts.Load(); a != 1 {
		t.Fatalf("%d connections, want 1: replies kept coming", a)
	}
}

// A caller giving up (its context ends) gets its request back at once;
// the reply is discarded.
func TestMuxCallerGivesUp(t *testing.T) {
	srv := newMetaServer(t)
	m := dialTestMux(t, srv.addr, 0)
	r := getReq("k")
	ctx, cancel := context.WithCancel(bg)
	d := make(chan error, 1)
	go func() { d <- m.Do(ctx, r) }()
	c := srv.next(t)
	cancel()
	if err := wait(t, d); !errors.Is(err, context.Canceled) {
		t.Fatalf("given up: %v, want context.Canceled", err)
	}
	r.Key = "k2"
	d = start(m, r)
	c2 := srv.next(t)
	c.value("OLD")
	c2.value("NEW")
	wantValue(t, "reused", r, wait(t, d), "NEW")
}

func TestParseMuxReply(t *testing.T) {
	for _, tc := range []struct {
		line      string
		st, size  int
		tok       uint64
		wantError bool
	}{
		{"VA 5 O12", muxVA, 5, 12, false},
		{"VA 0 t-1 O3 W", muxVA, 0, 3, false},
		{"EN O123", muxEN, 0, 123, false},
		{"HD O7", muxHD, 0, 7, false},
		{"NS O8", muxNS, 0, 8, false},
		{"HD", 0, 0, 0, true},      // no token
		{"VA x O1", 0, 0, 0, true}, // bad size
		{"EN Oabc", 0, 0, 0, true}, // bad token
		{"ENX O1", 0, 0, 0, true},  // unknown status
		{"SERVER_ERROR x", 0, 0, 0, true},
	} {
		st, size, tok, err := parseMuxReply([]byte(tc.line))
		if (err != nil) != tc.wantError || st != tc.st || size != tc.size || tok != tc.tok {
			t.Errorf("%q: %d %d %d %v", tc.line, st, size, tok, err)
		}
	}
	var se *ServerError
	if _, _, _, err := parseMuxReply([]byte("SERVER_ERROR out of memory")); !errors.As(err, &se) || !inStep(err) {
		t.Errorf("SERVER_ERROR: %v, want an in-step *ServerError", err)
	}
}
