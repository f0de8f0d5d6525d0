package memcache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
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
	inflight chan []*MuxReq
	done     chan struct{}
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

// DialMux connects to addr.
func DialMux(ctx context.Context, addr string) (*Mux, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("memcache: dial %s: %w", addr, err)
	}
	m := &Mux{nc: nc, reqs: make(chan *MuxReq, 1024), inflight: make(chan []*MuxReq, 1024), done: make(chan struct{})}
	m.wg.Add(2)
	go m.writer()
	go m.reader()
	return m, nil
}

// Do sends r and waits for its answer (or ctx).
func (m *Mux) Do(ctx context.Context, r *MuxReq) error {
	r.Found, r.Err = false, nil
	select {
	case m.reqs <- r:
	case <-m.done:
		return m.failure()
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.Done:
		return r.Err
	case <-ctx.Done():
		// the answer still arrives later on r.Done; the caller must not
		// reuse r, which is why this path is rare (shutdown only).
		return ctx.Err()
	}
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
	gather:
		for len(batch) < 256 {
			select {
			case r := <-m.reqs:
				batch = append(batch, r)
			default:
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
		select {
		case m.inflight <- batch:
		case <-m.done:
			return
		}
		_ = m.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
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
		var batch []*MuxReq
		select {
		case batch = <-m.inflight:
		case <-m.done:
			return
		}
		for _, r := range batch {
			if r.Set {
				l, err := cn.line()
				if err == nil && string(l) != "HD" {
					err = checkErrorLine(l)
				}
				r.Err = err
				r.Done <- struct{}{}
				if err != nil {
					m.fail(err)
					return
				}
				continue
			}
			res, err := cn.readMeta()
			if err != nil {
				r.Err = err
				r.Done <- struct{}{}
				m.fail(err)
				return
			}
			r.Found = res.Found
			r.Value = append(r.Value[:0], res.Value...)
			r.Done <- struct{}{}
		}
	}
}
