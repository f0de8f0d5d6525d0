package memcache

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hungServer answers meta and text commands from a kv until hang is set,
// then reads requests and never answers (a server that stopped responding
// behind an open connection, or a proxy with a timeout toxic).
func hungServer(t *testing.T) *scripted {
	s := newScripted(t, newKV("k", "v").reply)
	s.hang.Store(true)
	return s
}

// fastFail calls fn and checks it failed with ErrBreakerOpen well within
// the client's timeout.
func fastFail(t *testing.T, what string, fn func() error) {
	t.Helper()
	t0 := time.Now()
	err := fn()
	if !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("%s: err = %v, want ErrBreakerOpen", what, err)
	}
	if el := time.Since(t0); el > 100*time.Millisecond {
		t.Fatalf("%s: failed after %v, not fast", what, el)
	}
}

func TestBreakerOpensAfterFailures(t *testing.T) {
	for _, mux := range []bool{false, true} {
		s := hungServer(t)
		c := newClient(t, []string{s.addr}, WithTimeout(150*time.Millisecond), WithBreaker(3, time.Hour), WithMux(mux))
		for i := 0; i < 3; i++ {
			if _, err := c.Get(bg, "k"); !isTimeout(err) || errors.Is(err, ErrBreakerOpen) {
				t.Fatalf("mux=%v call %d: %v, want a timeout", mux, i, err)
			}
		}
		if n := c.BreakerOpens(); n != 1 {
			t.Fatalf("mux=%v: BreakerOpens = %d after 3 timeouts, want 1", mux, n)
		}
		if n := c.BreakersOpen(); n != 1 {
			t.Fatalf("mux=%v: BreakersOpen = %d, want 1", mux, n)
		}
		dialled := s.accepts.Load()
		for i := 0; i < 20; i++ {
			fastFail(t, "Get", func() error { _, err := c.Get(bg, "k"); return err })
		}
		if a := s.accepts.Load(); a != dialled {
			t.Fatalf("mux=%v: %d dials while open, want none", mux, a-dialled)
		}
		if n := c.BreakerOpens(); n != 1 {
			t.Fatalf("mux=%v: BreakerOpens = %d, want still 1", mux, n)
		}
	}
}

// Every command goes through the breaker.
func TestBreakerAppliesToEveryCommand(t *testing.T) {
	c := newClient(t, []string{refusedAddr(t)}, WithBreaker(2, time.Hour))
	for i := 0; i < 2; i++ {
		if _, err := c.Get(bg, "k"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("call %d: %v, want connection refused", i, err)
		}
	}
	fastFail(t, "Get", func() error { _, err := c.Get(bg, "k"); return err })
	fastFail(t, "GetMulti", func() error { return c.GetMulti(bg, []string{"a", "b"}, func(string, []byte) {}) })
	fastFail(t, "MetaGetMulti", func() error { return c.MetaGetMulti(bg, []string{"a", "b"}, func(string, []byte) {}) })
	fastFail(t, "MetaGet", func() error { _, err := c.MetaGet(bg, "k", 3, 0); return err })
	fastFail(t, "Set", func() error { return c.Set(bg, "k", []byte("v"), 0) })
	fastFail(t, "Add", func() error { return c.Add(bg, "k", []byte("v"), 0) })
	fastFail(t, "Delete", func() error { return c.Delete(bg, "k") })
	fastFail(t, "MetaSet", func() error { return c.MetaSet(bg, "k", []byte("v"), 0) })
	fastFail(t, "FlushAll", func() error { return c.FlushAll(bg) })
}

// Only one server's breaker opens; the other server keeps serving, and a
// multi-get returns its hits next to the open breaker's error.
func TestBreakerPerServer(t *testing.T) {
	live := newScripted(t, newKV().reply)
	dead := refusedAddr(t)
	c := newClient(t, []string{live.addr, dead}, WithBreaker(1, time.Hour))
	var liveKey, deadKey string
	for i := 0; liveKey == "" || deadKey == ""; i++ {
		k := "key" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if c.ServerIndex(k) == 0 {
			liveKey = k
		} else {
			deadKey = k
		}
	}
	if err := c.Set(bg, deadKey, []byte("x"), 0); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dead server: %v", err)
	}
	fastFail(t, "dead server", func() error { return c.Set(bg, deadKey, []byte("x"), 0) })
	if err := c.Set(bg, liveKey, []byte("x"), 0); err != nil {
		t.Fatalf("live server: %v", err)
	}
	hits := 0
	err := c.GetMulti(bg, []string{liveKey, deadKey}, func(string, []byte) { hits++ })
	if hits != 1 || !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("GetMulti: %d hits, %v; want 1 hit and ErrBreakerOpen", hits, err)
	}
}

// Answers are not failures: misses, NOT_STORED and error replies never
// open the breaker, and they reset the count of consecutive failures.
func TestBreakerIgnoresAnswers(t *testing.T) {
	s := newScripted(t, func(l string, _ []byte) string {
		switch l[:3] {
		case "get":
			return "END\r\n"
		case "add":
			return "NOT_STORED\r\n"
		case "set":
			return "SERVER_ERROR out of memory storing object\r\n"
		case "ms ":
			return "CLIENT_ERROR bad data chunk\r\n"
		}
		return "ERROR\r\n"
	})
	c := newClient(t, []string{s.addr}, WithBreaker(2, time.Hour))
	for i := 0; i < 10; i++ {
		if _, err := c.Get(bg, "k"); err != ErrCacheMiss {
			t.Fatalf("get: %v", err)
		}
		if err := c.Add(bg, "k", []byte("v"), 0); err != ErrNotStored {
			t.Fatalf("add: %v", err)
		}
		var se *ServerError
		if err := c.Set(bg, "k", []byte("v"), 0); !errors.As(err, &se) {
			t.Fatalf("set: %v", err)
		}
		if err := c.MetaSet(bg, "k", []byte("v"), 0); !errors.As(err, &se) {
			t.Fatalf("ms: %v", err)
		}
	}
	if n := c.BreakerOpens(); n != 0 {
		t.Fatalf("BreakerOpens = %d after answers only, want 0", n)
	}
}

func TestBreakerCountsConsecutiveFailuresOnly(t *testing.T) {
	s := newScripted(t, newKV("k", "v").reply)
	c := newClient(t, []string{s.addr}, WithTimeout(50*time.Millisecond), WithBreaker(2, time.Hour))
	for i := 0; i < 4; i++ {
		s.hang.Store(true)
		if _, err := c.Get(bg, "k"); !isTimeout(err) {
			t.Fatalf("round %d: %v, want a timeout", i, err)
		}
		s.hang.Store(false)
		if _, err := c.Get(bg, "k"); err != nil {
			t.Fatalf("round %d: %v after one failure, want an answer", i, err)
		}
	}
	if n := c.BreakerOpens(); n != 0 {
		t.Fatalf("BreakerOpens = %d with failures never consecutive, want 0", n)
	}
}

// A caller's own cancellation says nothing about the server.
func TestBreakerIgnoresCancellation(t *testing.T) {
	s := hungServer(t)
	c := newClient(t, []string{s.addr}, WithMaxConns(1), WithBreaker(1, time.Hour))
	// one caller holds the only connection...
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Get(bg, "k")
	}()
	for s.accepts.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// ...others give up waiting for it
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
		_, err := c.Get(ctx, "k")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("waiter %d: %v", i, err)
		}
	}
	if n := c.BreakerOpens(); n != 0 {
		t.Fatalf("BreakerOpens = %d after callers gave up waiting for a slot, want 0", n)
	}
	<-done // the holder times out (500ms): a real failure, opens it
	if n := c.BreakerOpens(); n != 1 {
		t.Fatalf("BreakerOpens = %d after the holder's timeout, want 1", n)
	}
}

func TestBreakerHalfOpenCloses(t *testing.T) {
	for _, mux := range []bool{false, true} {
		s := hungServer(t)
		c := newClient(t, []string{s.addr}, WithTimeout(150*time.Millisecond), WithBreaker(2, 400*time.Millisecond), WithMux(mux))
		for i := 0; i < 2; i++ {
			_, _ = c.Get(bg, "k")
		}
		fastFail(t, "open", func() error { _, err := c.Get(bg, "k"); return err })
		s.hang.Store(false) // the server recovers while the breaker is open
		fastFail(t, "still open before the cooldown", func() error { _, err := c.Get(bg, "k"); return err })
		time.Sleep(450 * time.Millisecond)
		// the trial call goes through and closes the breaker
		if v, err := c.Get(bg, "k"); err != nil || string(v) != "v" {
			t.Fatalf("mux=%v: trial call: %q, %v", mux, v, err)
		}
		if n := c.BreakersOpen(); n != 0 {
			t.Fatalf("mux=%v: BreakersOpen = %d after a successful trial", mux, n)
		}
		for i := 0; i < 5; i++ {
			if _, err := c.Get(bg, "k"); err != nil {
				t.Fatalf("mux=%v: after closing: %v", mux, err)
			}
		}
		// closed again: it takes 2 new consecutive failures to reopen
		s.hang.Store(true)
		if _, err := c.Get(bg, "k"); !isTimeout(err) {
			t.Fatalf("mux=%v: %v", mux, err)
		}
		if n := c.BreakerOpens(); n != 1 {
			t.Fatalf("mux=%v: BreakerOpens = %d, want 1", mux, n)
		}
		if _, err := c.Get(bg, "k"); !isTimeout(err) {
			t.Fatalf("mux=%v: %v", mux, err)
		}
		if n := c.BreakerOpens(); n != 2 {
			t.Fatalf("mux=%v: BreakerOpens = %d, want 2", mux, n)
		}
	}
}

func TestBreakerHalfOpenFailureReopens(t *testing.T) {
	s := hungServer(t)
	c := newClient(t, []string{s.addr}, WithTimeout(150*time.Millisecond), WithBreaker(1, 300*time.Millisecond))
	if _, err := c.Get(bg, "k"); !isTimeout(err) {
		t.Fatal(err)
	}
	time.Sleep(350 * time.Millisecond)
	dialled := s.accepts.Load()
	// one trial: it goes to the server; concurrent callers fail fast
	trial := make(chan error, 1)
	go func() { _, err := c.Get(bg, "k"); trial <- err }()
	for s.accepts.Load() == dialled {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Get(bg, "k"); !errors.Is(err, ErrBreakerOpen) {
				t.Errorf("during the trial: %v, want ErrBreakerOpen", err)
			}
		}()
	}
	wg.Wait()
	if err := <-trial; !isTimeout(err) {
		t.Fatalf("trial: %v, want a timeout", err)
	}
	if a := s.accepts.Load() - dialled; a != 1 {
		t.Fatalf("%d dials in half-open state, want 1 (the trial)", a)
	}
	if n := c.BreakerOpens(); n != 2 {
		t.Fatalf("BreakerOpens = %d after a failed trial, want 2", n)
	}
	fastFail(t, "reopened", func() error { _, err := c.Get(bg, "k"); return err })
}

// A blackholed server (connects never complete): the breaker turns a
// connect timeout per call into a fast failure.
func TestBreakerBlackholed(t *testing.T) {
	addr := blackholed(t)
	c := newClient(t, []string{addr}, WithDialTimeout(150*time.Millisecond), WithBreaker(2, time.Hour))
	for i := 0; i < 2; i++ {
		if _, err := c.Get(bg, "k"); !isTimeout(err) {
			t.Fatalf("call %d: %v, want a connect timeout", i, err)
		}
	}
	fastFail(t, "blackholed", func() error { _, err := c.Get(bg, "k"); return err })
}

// Callers queued for a connection slot while the breaker opens fail fast
// when they get the slot, instead of dialing.
func TestBreakerQueuedCallersDoNotDial(t *testing.T) {
	addr := blackholed(t)
	c := newClient(t, []string{addr}, WithMaxConns(2), WithDialTimeout(200*time.Millisecond), WithBreaker(2, time.Hour))
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	t0 := time.Now()
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Get(bg, "k")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	dials, open := 0, 0
	for err := range errs {
		switch {
		case errors.Is(err, ErrBreakerOpen):
			open++
		case isTimeout(err):
			dials++
		default:
			t.Errorf("unexpected %v", err)
		}
	}
	// the first two dial; the slot the first failure frees may be taken
	// (and dialled) before the second failure opens the breaker
	if dials < 2 || dials > 3 || open != 10-dials {
		t.Fatalf("%d dial timeouts and %d fast failures, want 2 or 3 and the rest", dials, open)
	}
	// without the breaker: 5 rounds of 2 dials of 200ms
	if el := time.Since(t0); el > 750*time.Millisecond {
		t.Fatalf("took %v: queued callers dialled", el)
	}
}

func TestBreakerOffByDefault(t *testing.T) {
	c := newClient(t, []string{refusedAddr(t)})
	for i := 0; i < 20; i++ {
		if _, err := c.Get(bg, "k"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("call %d: %v, want connection refused every time", i, err)
		}
	}
	if c.BreakerOpens() != 0 {
		t.Fatal("breaker opened while off")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want outcome
	}{
		{nil, outSuccess},
		{ErrCacheMiss, outSuccess},
		{ErrNotStored, outSuccess},
		{&ServerError{Line: "SERVER_ERROR x"}, outSuccess},
		{&ProtocolError{Line: "x"}, outNeutral},
		{context.Canceled, outNeutral},
		{&waitError{err: context.DeadlineExceeded}, outNeutral},
		{&breakerOpenError{}, outNeutral},
		{context.DeadlineExceeded, outFailure},
		{&dialError{err: errors.New("no route")}, outFailure},
		{&dialError{err: context.Canceled}, outNeutral},
		{&timeoutError{msg: "no reply"}, outFailure},
		{syscall.ECONNRESET, outFailure},
		{syscall.ECONNREFUSED, outFailure},
		{errors.Join(ErrCacheMiss, syscall.EPIPE), outSuccess},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
