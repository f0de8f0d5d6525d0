package memcache

import (
	"bufio"
	"context"
	"errors"
	"net"
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
type Mux struct {
	nc       net.Conn
	reqs     chan *MuxReq
	inflight chan muxBatch
	timeout  time.Duration // per batch; 0: none (writes: 5 s)
	done     chan struct{}
	dead     atomic.Bool // done is closed
	wg       sync.WaitGroup
	errMu    sync.Mutex
	err      error
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

type muxBatch struct {
	reqs     []*MuxReq
	deadline time.Time // of the answers (zero: none)
}

// DialMux connects to addr. Requests wait for their answers as long as
// their context allows; see Client's WithMux for a Mux with a timeout.
func DialMux(ctx context.Context, addr string) (*Mux, error) {
	return dialMux(ctx, addr, 0)
}

// dialMux connects to addr. With timeout > 0 the answers to each batch of
// requests must arrive within timeout of its sending (one read deadline
// per batch, no timer per request), else the Mux fails, and with it every
// request in flight, as a timed-out pooled connection is closed.
func dialMux(ctx context.Context, addr string, timeout time.Duration) (*Mux, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{addr: addr, err: err}
	}
	m := &Mux{nc: nc, reqs: make(chan *MuxReq, 1024), inflight: make(chan muxBatch, 1024), done: make(chan struct{}), timeout: timeout}
	m.wg.Add(2)
	go m.writer()
	go m.reader()
	return m, nil
}

// Do sends r and waits for its answer, for ctx, or for the Mux to fail
// (a failure of the connection fails every request in flight at once).
// After an error that is not the request's own answer (r.Err: an error
// reply or a broken reply) the answer may still be written into r later:
// the caller must not reuse r then.
func (m *Mux) Do(ctx context.Context, r *MuxReq) error {
	_, err := m.do(ctx, r)
	return err
}

// do is Do, also saying whether r was answered (and so may be reused).
func (m *Mux) do(ctx context.Context, r *MuxReq) (bool, error) {
	r.Found, r.Err = false, nil
	if m.dead.Load() {
		return true, m.failure()
	}
	select {
	case m.reqs <- r: // the usual case: no select over three channels
	default:
		select {
		case m.reqs <- r:
		case <-m.done:
			return true, m.failure() // never queued
		case <-ctx.Done():
			return true, ctx.Err() // never queued
		}
	}
	if cd := ctx.Done(); cd == nil {
		select {
		case <-r.Done:
			return true, r.Err
		case <-m.done:
		}
	} else {
		select {
		case <-r.Done:
			return true, r.Err
		case <-cd:
			return false, ctx.Err()
		case <-m.done:
		}
	}
	select {
	case <-r.Done: // answered before the failure
		return true, r.Err
	default:
	}
	return false, m.failure()
}

func (m *Mux) failure() error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	if m.err == nil {
		return errors.New("memcache: mux closed")
	}
	return m.err
}

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

func (m *Mux) writer() {
	defer m.wg.Done()
	w := bufio.NewWriterSize(m.nc, 64<<10)
	var num []byte
	for {
		var first *MuxReq
		select {
		case first = <-m.reqs:
		case <-m.done:
			return
		}
		batch := []*MuxReq{first}
		yields := 0
	gather:
		for len(batch) < 256 {
			select {
			case r := <-m.reqs:
				batch = append(batch, r)
			default:
				if yields < muxYields {
					yields++
					runtime.Gosched()
					continue
				}
				break gather
			}
		}
		for _, r := range batch {
			if r.Set {
				w.WriteString("ms ")
				w.WriteString(r.Key)
				w.WriteByte(' ')
				num = strconv.AppendInt(num[:0], int64(len(r.Value)), 10)
				w.Write(num)
				w.WriteString(" T")
				num = strconv.AppendInt(num[:0], int64(r.TTL), 10)
				w.Write(num)
				w.WriteString("\r\n")
				w.Write(r.Value)
				w.WriteString("\r\n")
			} else {
				w.WriteString("mg ")
				w.WriteString(r.Key)
				w.WriteString(" v\r\n")
			}
		}
		wd := 5 * time.Second
		var dl time.Time
		if m.timeout > 0 {
			wd = m.timeout
			dl = time.Now().Add(m.timeout)
		}
		select {
		case m.inflight <- muxBatch{reqs: batch, deadline: dl}:
		case <-m.done:
			return
		}
		_ = m.nc.SetWriteDeadline(time.Now().Add(wd))
		if err := w.Flush(); err != nil {
			m.fail(err)
			return
		}
	}
}

func (m *Mux) reader() {
	defer m.wg.Done()
	cn := &conn{r: bufio.NewReaderSize(m.nc, 64<<10)}
	for {
		var batch muxBatch
		select {
		case batch = <-m.inflight:
		case <-m.done:
			return
		}
		if !batch.deadline.IsZero() {
			_ = m.nc.SetReadDeadline(batch.deadline)
		}
		for _, r := range batch.reqs {
			var err error
			if r.Set {
				var l []byte
				l, err = cn.line()
				if err == nil {
					switch string(l) {
					case "HD":
					case "NS":
						err = ErrNotStored
					default:
						err = checkErrorLine(l)
					}
				}
			} else {
				var res MetaResult
				res, err = cn.readMeta()
				r.Found = res.Found
				r.Value = append(r.Value[:0], res.Value...)
			}
			r.Err = err
			r.Done <- struct{}{}
			if err != nil && !inStep(err) {
				m.fail(err)
				return
			}
		}
	}
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
