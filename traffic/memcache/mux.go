package memcache

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mux multiplexes many concurrent callers over one connection with meta
// commands: a writer goroutine gathers every request waiting at that moment
// into one write, and a reader goroutine answers them in order. Concurrent
// callers thus share syscalls as an event-loop generator (memcaslap) does,
// and it uses meta commands because memcached 1.6.18 flushes once per
// pipelined text get. One Mux serves one server; it is safe for concurrent use.
//
// Every request carries an opaque token (the O flag), which memcached
// echoes in its reply, so a reply is matched to its own request: a request
// that timed out, or whose caller gave up, is given back to its caller at
// once and its late reply is read and discarded, without failing the other
// requests on the connection.
type Mux struct {
	nc      net.Conn
	timeout time.Duration // per request; 0: none (the caller's context only)
	stall   time.Duration // see muxStallLimit (timeout > 0)
	t0      time.Time     // deadlines are nanoseconds since t0 (monotonic)
	wake    chan struct{} // cap 1: the writer has bytes to send
	done    chan struct{}
	dead    atomic.Bool   // done is closed
	rdone   atomic.Uint64 // ring position up to which replies were read
	wg      sync.WaitGroup

	timeoutErr error // a request's deadline passed
	stallErr   error // the connection answered nothing for stall

	mu         sync.Mutex
	wb         []byte // requests not yet written
	writerIdle bool   // the writer waits for wake
	// ring holds the requests sent (or about to be) in order, at
	// positions [rpos, wpos) modulo its power-of-two length; the reader
	// reclaims positions up to rpos, the expirer looks from epos.
	ring             []muxEntry
	rpos, wpos, epos uint64
	lost             []muxEntry // skipped by a later reply, for the expirer
	tok, tokEnd      uint64     // tokens left in this Mux's block: (tok, tokEnd]

	errMu sync.Mutex
	err   error
}

// MuxReq is one request; callers reuse it (and its Done channel) across
// calls to avoid allocation on the hot path.
type MuxReq struct {
	Key   string
	Set   bool
	Value []byte // value to set, or the value read (valid until reuse)
	TTL   int
	Found bool
	Err   error
	Done  chan struct{}

	// pend is the token of the request in flight until someone claims
	// it (its reply, its deadline, its caller giving up, the Mux
	// failing), 0 after: whoever swaps it to 0 answers the request, so a
	// late reply is never written into a request already given back.
	pend atomic.Uint64
}

// NewMuxReq returns a reusable request.
func NewMuxReq() *MuxReq { return &MuxReq{Done: make(chan struct{}, 1)} }

// muxYields is how many times the writer yields to other goroutines while
// gathering a batch before writing it. Callers whose answers were just
// read are runnable and about to send again; letting them run first costs
// a fraction of a microsecond and makes one write carry their requests
// too. Measured on a 2-CPU host: gets per CPU-second +50% (1 yield) to
// +100% (2); more than 2 gave nothing more.
const muxYields = 2

// muxTokens hands out blocks of tokens to Muxes: tokens are unique over
// the process, so a late reply read by a Mux being closed cannot match a
// request reused on its successor.
var muxTokens atomic.Uint64

const muxTokenBlock = 1 << 20

// muxStallLimit is how long a Mux whose requests time out after timeout
// may answer nothing while requests wait before its connection is failed
// (a blackholed or hung server; callers then redial). A single slow reply
// stays well under it.
func muxStallLimit(timeout time.Duration) time.Duration {
	return max(2*timeout, time.Second)
}

// muxEntry is one request in flight; it does not change once queued.
type muxEntry struct {
	r        *MuxReq
	tok      uint64
	deadline int64 // ns since t0; 0 without a timeout
	set      bool
}

// timeoutError is a request left without a reply: a net.Error whose
// Timeout is true, as a pooled connection's read deadline error is.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Unwrap() error   { return os.ErrDeadlineExceeded }

// errNoReply fails a request of a Mux without timeout when memcached
// answered a later request first: its own reply will never come.
var errNoReply = errors.New("memcache: no reply: the server answered a later request")

// DialMux connects to addr. Requests wait for their answers as long as
// their context allows; see Client's WithMux for a Mux with a timeout.
func DialMux(ctx context.Context, addr string) (*Mux, error) {
	return dialMux(ctx, addr, 0)
}

// dialMux connects to addr. With timeout > 0 each request fails with a
// timeout error at timeout after it was sent; one expirer goroutine wakes
// at the earliest deadline (no timer per request). The connection is kept,
// unless it answers nothing for muxStallLimit(timeout) while requests wait.
func dialMux(ctx context.Context, addr string, timeout time.Duration) (*Mux, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{addr: addr, err: err}
	}
	m := &Mux{
		nc: nc, timeout: timeout, t0: time.Now(), wake: make(chan struct{}, 1), done: make(chan struct{}),
		writerIdle: true, ring: make([]muxEntry, 256),
	}
	n := 2
	if timeout > 0 {
		m.stall = muxStallLimit(timeout)
		m.timeoutErr = &timeoutError{msg: "memcache: " + addr + ": no reply within " + timeout.String()}
		m.stallErr = &timeoutError{msg: "memcache: " + addr + ": no reply for " + m.stall.String() + ", connection closed"}
		n = 3
	}
	m.wg.Add(n)
	go m.writer()
	go m.reader()
	if timeout > 0 {
		go m.expirer()
	}
	return m, nil
}

func (m *Mux) now() int64 { return int64(time.Since(m.t0)) }

// Do sends r and waits for its answer, its deadline (a Mux with a
// timeout), ctx, or the Mux to fail. When it returns nothing refers to r
// any more: the caller may reuse r at once, whatever the error; a reply
// arriving later is discarded.
func (m *Mux) Do(ctx context.Context, r *MuxReq) error {
	r.Found, r.Err = false, nil
	if m.dead.Load() {
		return m.failure()
	}
	tok := m.send(r)
	if cd := ctx.Done(); cd == nil {
		select { // the usual case: no select over three channels
		case <-r.Done:
			return r.Err
		case <-m.done:
		}
	} else {
		select {
		case <-r.Done:
			return r.Err
		case <-cd:
			if r.pend.CompareAndSwap(tok, 0) {
				return ctx.Err()
			}
			<-r.Done // answered or timed out meanwhile: its claimer signals
			return r.Err
		case <-m.done:
		}
	}
	if r.pend.CompareAndSwap(tok, 0) {
		return m.failure()
	}
	<-r.Done
	return r.Err
}

// send appends r's command to the bytes the writer sends next and queues
// its entry. Callers encode their own commands, so the writer and the
// reader never read r, which its caller may reuse as soon as Do returns.
func (m *Mux) send(r *MuxReq) uint64 {
	m.mu.Lock()
	if m.tok == m.tokEnd {
		m.tokEnd = muxTokens.Add(muxTokenBlock)
		m.tok = m.tokEnd - muxTokenBlock
	}
	m.tok++
	tok := m.tok
	r.pend.Store(tok)
	b := m.wb
	if r.Set {
		b = append(append(append(b, "ms "...), r.Key...), ' ')
		b = strconv.AppendInt(b, int64(len(r.Value)), 10)
		b = strconv.AppendInt(append(b, " T"...), int64(r.TTL), 10)
		b = strconv.AppendUint(append(b, " O"...), tok, 10)
		b = append(append(append(b, "\r\n"...), r.Value...), "\r\n"...)
	} else {
		b = append(append(append(b, "mg "...), r.Key...), " v O"...)
		b = append(strconv.AppendUint(b, tok, 10), "\r\n"...)
	}
	m.wb = b
	var dl int64
	if m.timeout > 0 {
		// read under the lock, so deadlines never decrease along the ring
		dl = m.now() + int64(m.timeout)
	}
	if m.wpos-m.rpos == uint64(len(m.ring)) {
		ring := make([]muxEntry, 2*len(m.ring))
		for p := m.rpos; p < m.wpos; p++ {
			ring[p&uint64(len(ring)-1)] = m.ring[p&uint64(len(m.ring)-1)]
		}
		m.ring = ring
	}
	m.ring[m.wpos&uint64(len(m.ring)-1)] = muxEntry{r: r, tok: tok, deadline: dl, set: r.Set}
	m.wpos++
	wake := m.writerIdle
	m.writerIdle = false
	m.mu.Unlock()
	if wake {
		m.wake <- struct{}{} // never blocks: one wake per idle writer
	}
	return tok
}

func (m *Mux) failure() error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	if m.err == nil {
		return errors.New("memcache: mux closed")
	}
	return m.err
}

// fail closes the connection; the callers still waiting see done and
// claim their requests themselves.
func (m *Mux) fail(err error) {
	m.errMu.Lock()
	if m.err == nil {
		m.err = err
		m.dead.Store(true)
		close(m.done)
		_ = m.nc.Close()
	}
	m.errMu.Unlock()
}

// Close stops the goroutines and closes the connection.
func (m *Mux) Close() error {
	m.fail(errors.New("memcache: mux closed"))
	m.wg.Wait()
	return nil
}

// maxKeptMuxWB: a write buffer grown past this (large sets) is not kept.
const maxKeptMuxWB = 1 << 20

func (m *Mux) writer() {
	defer m.wg.Done()
	var buf []byte
	for {
		select {
		case <-m.wake:
		case <-m.done:
			return
		}
		for i := 0; i < muxYields; i++ {
			runtime.Gosched()
		}
		m.mu.Lock()
		buf, m.wb = m.wb, buf[:0]
		m.writerIdle = true
		m.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		// a server that takes none of our bytes for this long is as dead
		// as one that answers nothing
		wd := 5 * time.Second
		if m.timeout > 0 {
			wd = m.stall
		}
		_ = m.nc.SetWriteDeadline(time.Now().Add(wd))
		if _, err := m.nc.Write(buf); err != nil {
			m.fail(err)
			return
		}
		if cap(buf) > maxKeptMuxWB {
			buf = nil
		}
	}
}

// sent returns the entries queued from position from on, into dst, and
// gives back the ring positions before from.
func (m *Mux) sent(dst []muxEntry, from uint64) []muxEntry {
	m.mu.Lock()
	m.rpos = from
	for p := from; p < m.wpos; p++ {
		dst = append(dst, m.ring[p&uint64(len(m.ring)-1)])
	}
	m.mu.Unlock()
	return dst
}

// reader reads replies and answers their requests. It never sets a read
// deadline, so no timeout can cut a reply in two and put the stream out of
// step: deadlines are the expirer's, and a connection is only given up by
// closing it.
func (m *Mux) reader() {
	defer m.wg.Done()
	cn := &conn{r: bufio.NewReaderSize(m.nc, readBufSize)}
	var ents, skipped []muxEntry // ents[i:]: requests not yet answered, from position base+i
	var base uint64
	i := 0
	for {
		l, err := cn.line()
		if err != nil {
			m.fail(err)
			return
		}
		st, size, tok, perr := parseMuxReply(l)
		// The reply answers the oldest request in flight unless it bears a
		// later one's token: the requests in between, or their replies,
		// were lost on the way (a proxy dropping data), and will never be
		// answered.
		matched := false
		var e muxEntry
		for {
			if i == len(ents) {
				if len(skipped) > 0 {
					// before the ring positions are given back, so the
					// expirer sees them
					m.lose(skipped)
					skipped = skipped[:0]
				}
				base += uint64(i)
				ents, i = m.sent(ents[:0], base), 0
				if len(ents) == 0 {
					break
				}
			}
			e = ents[i]
			if tok == 0 || e.tok == tok {
				matched = true
				break
			}
			if e.tok > tok {
				break
			}
			skipped = append(skipped, e)
			i++
		}
		if len(skipped) > 0 {
			m.lose(skipped)
			skipped = skipped[:0]
		}
		if !matched {
			m.fail(&ProtocolError{Line: "reply to no request in flight: " + string(l)})
			return
		}
		i++
		var val []byte
		fatal := false
		switch {
		case perr != nil:
			err, fatal = perr, !inStep(perr)
		case e.set && st == muxHD:
		case e.set && st == muxNS:
			err = ErrNotStored
		case !e.set && st == muxEN:
		case !e.set && st == muxVA:
			// read even for a request already given back, to stay in step
			if val, err = cn.data(size); err != nil {
				fatal = true
			}
		default:
			err, fatal = &ProtocolError{Line: string(l)}, true
		}
		deliver(e, st == muxVA && err == nil, val, err)
		m.rdone.Store(base + uint64(i))
		if fatal {
			m.fail(err)
			return
		}
	}
}

// deliver answers e's request unless it was claimed before (timed out,
// given up by its caller): then the reply is discarded, and the request,
// which its caller may be reusing, is not touched.
func deliver(e muxEntry, found bool, val []byte, err error) {
	r := e.r
	if !r.pend.CompareAndSwap(e.tok, 0) {
		return
	}
	r.Found, r.Err = found, err
	if !e.set {
		r.Value = append(r.Value[:0], val...)
	}
	r.Done <- struct{}{}
}

// lose takes requests a reply skipped over. With a timeout they fail at
// their deadline as any request left without a reply does (the expirer
// sees them in m.lost); without one, at once.
func (m *Mux) lose(es []muxEntry) {
	if m.timeout == 0 {
		for _, e := range es {
			deliver(e, false, nil, errNoReply)
		}
		return
	}
	m.mu.Lock()
	for _, e := range es {
		if e.r.pend.Load() == e.tok { // most timed out already
			m.lost = append(m.lost, e)
		}
	}
	m.mu.Unlock()
}

// expirer fails each request at its deadline and the connection after
// m.stall without a reply. All requests have the same timeout and their
// deadlines are taken in ring order, so it only ever waits for the oldest
// pending one; a request queued after it looked has a deadline at least
// timeout later, so it sleeps at most timeout and needs no wake-up.
func (m *Mux) expirer() {
	defer m.wg.Done()
	t := time.NewTimer(m.timeout)
	defer t.Stop()
	var due []muxEntry
	var seen uint64 // m.rdone when last looked at
	var moved int64 // when it was seen to move
	for {
		select {
		case <-t.C:
		case <-m.done:
			return
		}
		now := m.now()
		next := now + int64(m.timeout)
		due = due[:0]
		m.mu.Lock()
		n := 0
		for n < len(m.lost) && m.lost[n].deadline <= now {
			n++
		}
		due = append(due, m.lost[:n]...)
		m.lost = m.lost[:copy(m.lost, m.lost[n:])]
		if len(m.lost) > 0 {
			next = min(next, m.lost[0].deadline)
		}
		// the reader gives positions back (rpos) before it says it read
		// their replies (rdone)
		read := max(m.rdone.Load(), m.rpos)
		m.epos = max(m.epos, read)
		mask := uint64(len(m.ring) - 1)
		for ; m.epos < m.wpos; m.epos++ {
			e := m.ring[m.epos&mask]
			if e.deadline > now {
				next = min(next, e.deadline)
				break
			}
			due = append(due, e)
		}
		stalled := false
		if read != seen {
			seen, moved = read, now
		}
		if read < m.wpos {
			// no reply since the later of the last one seen and the
			// sending of the oldest request waiting
			since := max(moved, m.ring[read&mask].deadline-int64(m.timeout))
			if now-since >= int64(m.stall) {
				stalled = true
			} else {
				next = min(next, since+int64(m.stall))
			}
		}
		m.mu.Unlock()
		for _, e := range due {
			if e.r.pend.CompareAndSwap(e.tok, 0) {
				e.r.Err = m.timeoutErr
				e.r.Done <- struct{}{}
			}
		}
		if stalled {
			m.fail(m.stallErr)
			return
		}
		t.Reset(time.Duration(next - m.now()))
	}
}

const (
	muxVA = iota + 1 // a value follows
	muxEN            // miss
	muxHD            // stored
	muxNS            // not stored
)

// parseMuxReply parses a meta reply line: its status, the size of its
// value (VA) and its token (O flag). An error line (SERVER_ERROR, ...)
// carries no token: tok is 0 and err the line's error. A status line
// without a token is a *ProtocolError: it could answer any request.
func parseMuxReply(l []byte) (st, size int, tok uint64, err error) {
	if len(l) < 2 || len(l) > 2 && l[2] != ' ' {
		return 0, 0, 0, checkErrorLine(l)
	}
	switch string(l[:2]) {
	case "VA":
		st = muxVA
	case "EN":
		st = muxEN
	case "HD":
		st = muxHD
	case "NS":
		st = muxNS
	default:
		return 0, 0, 0, checkErrorLine(l)
	}
	i := 2
	if st == muxVA {
		var s []byte
		s, i = field(l, i)
		if size = atoi(s); size < 0 {
			return 0, 0, 0, &ProtocolError{Line: string(l)}
		}
	}
	for {
		var f []byte
		f, i = field(l, i)
		if len(f) == 0 {
			break
		}
		if f[0] == 'O' {
			tok = parseToken(f[1:])
		}
	}
	if tok == 0 {
		return 0, 0, 0, &ProtocolError{Line: string(l)}
	}
	return st, size, tok, nil
}

// parseToken parses a token as Mux sends them (decimal, > 0); 0 if b is
// not one.
func parseToken(b []byte) uint64 {
	if len(b) == 0 || len(b) > 19 {
		return 0
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// inStep says whether the stream is still in step after a reply error: a
// miss, NOT_STORED or SERVER_ERROR reply is a whole reply; anything else
// (a broken or unexpected line, ERROR, CLIENT_ERROR, a read error) is not.
func inStep(err error) bool {
	if err == ErrNotStored || err == ErrCacheMiss {
		return true
	}
	se, ok := err.(*ServerError)
	return ok && strings.HasPrefix(se.Line, "SERVER_ERROR")
}
