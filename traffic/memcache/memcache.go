// Package memcache is a small, fast memcached client for the traffic engine:
// text and meta protocol, per-server connection pools, multi-get and
// pipelined meta gets, and the meta-protocol lease flags (mg N/R). It places
// keys with ketama so the spread matches common production clients.
//
// It exists instead of gomemcache because the engine needs the meta protocol
// (leases), pipelining, exact error classes and no per-call allocation of
// item structs on the hot path.
package memcache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/ketama"
)

// ErrCacheMiss is returned by single-key reads when the key is absent.
var ErrCacheMiss = errors.New("memcache: cache miss")

// ErrNotStored is returned by Add when the key already exists.
var ErrNotStored = errors.New("memcache: not stored")

// ServerError is an ERROR / CLIENT_ERROR / SERVER_ERROR reply.
type ServerError struct{ Line string }

func (e *ServerError) Error() string { return "memcache: server replied " + e.Line }

// ProtocolError means the reply could not be parsed (counted as decode).
type ProtocolError struct{ Line string }

func (e *ProtocolError) Error() string { return "memcache: bad reply " + strconv.Quote(e.Line) }

// Option configures a Client.
type Option func(*Client)

// WithMaxConns caps connections per server (default 64). Callers beyond the
// cap wait for a free connection, bounded by their context.
func WithMaxConns(n int) Option { return func(c *Client) { c.maxConns = n } }

// WithTimeout bounds each round trip (default 500 ms) when the context has
// no earlier deadline.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithDialTimeout bounds connection establishment (default 250 ms): a short
// connect timeout is a protection of incident 004.
func WithDialTimeout(d time.Duration) Option { return func(c *Client) { c.dialTimeout = d } }

// WithDialAddrs dials these addresses instead of the ring names, index by
// index: the ring (and so key placement) stays that of the names given to
// New. Admin clients use it to reach the servers behind the proxies directly.
func WithDialAddrs(a []string) Option { return func(c *Client) { c.dialAddrs = a } }

// WithMux routes Get and Set through one multiplexed meta-protocol
// connection per server (see Mux) instead of the pool: concurrent callers
// then share syscalls, which roughly doubles gets per CPU-second. Other
// commands keep using the pool. Default off.
func WithMux(on bool) Option { return func(c *Client) { c.useMux = on } }

// Client talks to a set of servers. It is safe for concurrent use.
type Client struct {
	ring        *ketama.Ring
	servers     []*server
	maxConns    int
	timeout     time.Duration
	dialTimeout time.Duration
	dialAddrs   []string
	useMux      bool
	reqPool     sync.Pool
}

type server struct {
	muxMu  sync.Mutex
	mux    *Mux
	addr   string
	idle   chan *conn
	opened atomic.Int64
	sem    chan struct{}
}

type conn struct {
	nc  net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	srv *server
	buf []byte
}

// New returns a client for addrs ("host:port").
func New(addrs []string, opts ...Option) (*Client, error) {
	ring, err := ketama.New(addrs)
	if err != nil {
		return nil, fmt.Errorf("memcache: %w", err)
	}
	c := &Client{ring: ring, maxConns: 64, timeout: 500 * time.Millisecond, dialTimeout: 250 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	if c.maxConns < 1 {
		return nil, errors.New("memcache: max conns must be >= 1")
	}
	if c.dialAddrs != nil && len(c.dialAddrs) != len(addrs) {
		return nil, fmt.Errorf("memcache: %d dial addresses for %d servers", len(c.dialAddrs), len(addrs))
	}
	for i, a := range addrs {
		if c.dialAddrs != nil {
			a = c.dialAddrs[i]
		}
		c.servers = append(c.servers, &server{addr: a, idle: make(chan *conn, c.maxConns), sem: make(chan struct{}, c.maxConns)})
	}
	return c, nil
}

// Servers returns the server addresses in ring order.
func (c *Client) Servers() []string { return c.ring.Servers() }

// ServerIndex returns the index of key's server.
func (c *Client) ServerIndex(key string) int { return c.ring.Index(key) }

// OpenConns returns the number of open connections over all servers.
func (c *Client) OpenConns() int64 {
	var n int64
	for _, s := range c.servers {
		n += s.opened.Load()
	}
	return n
}

// Close closes idle connections and multiplexed ones; busy pooled ones
// close when returned.
func (c *Client) Close() error {
	for _, s := range c.servers {
		s.muxMu.Lock()
		if s.mux != nil {
			_ = s.mux.Close()
			s.mux = nil
		}
		s.muxMu.Unlock()
		for {
			select {
			case cn := <-s.idle:
				cn.close()
				continue
			default:
			}
			break
		}
	}
	return nil
}

func (c *Client) acquire(ctx context.Context, s *server) (*conn, error) {
	select {
	case cn := <-s.idle:
		return cn, nil
	default:
	}
	select {
	case cn := <-s.idle:
		return cn, nil
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	d := net.Dialer{Timeout: c.dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		<-s.sem
		return nil, fmt.Errorf("memcache: dial %s: %w", s.addr, err)
	}
	s.opened.Add(1)
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10), srv: s}, nil
}

func (cn *conn) close() {
	_ = cn.nc.Close()
	cn.srv.opened.Add(-1)
	<-cn.srv.sem
}

// release returns cn to its pool, or closes it after an error, because a
// connection with a half-read reply cannot be reused.
func (c *Client) release(cn *conn, err error) {
	if err != nil && !errors.Is(err, ErrCacheMiss) && !errors.Is(err, ErrNotStored) {
		var se *ServerError
		if !errors.As(err, &se) {
			cn.close()
			return
		}
	}
	select {
	case cn.srv.idle <- cn:
	default:
		cn.close()
	}
}

func (c *Client) deadline(ctx context.Context, cn *conn) {
	dl := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = cn.nc.SetDeadline(dl)
}

// do runs fn on a connection to server i.
func (c *Client) do(ctx context.Context, i int, fn func(*conn) error) error {
	s := c.servers[i]
	cn, err := c.acquire(ctx, s)
	if err != nil {
		return err
	}
	c.deadline(ctx, cn)
	err = fn(cn)
	c.release(cn, err)
	return err
}

func (cn *conn) line() ([]byte, error) {
	l, err := cn.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(l) < 2 || l[len(l)-2] != '\r' {
		return nil, &ProtocolError{Line: string(l)}
	}
	return l[:len(l)-2], nil
}

func checkErrorLine(l []byte) error {
	if bytes.HasPrefix(l, []byte("ERROR")) || bytes.HasPrefix(l, []byte("CLIENT_ERROR")) || bytes.HasPrefix(l, []byte("SERVER_ERROR")) {
		return &ServerError{Line: string(l)}
	}
	return &ProtocolError{Line: string(l)}
}

// readValues reads VALUE blocks until END, calling fn for each. The value
// slice is only valid during fn.
func (cn *conn) readValues(fn func(key, val []byte)) error {
	for {
		l, err := cn.line()
		if err != nil {
			return err
		}
		if bytes.Equal(l, []byte("END")) {
			return nil
		}
		if !bytes.HasPrefix(l, []byte("VALUE ")) {
			return checkErrorLine(l)
		}
		f := bytes.Fields(l[6:])
		if len(f) < 3 {
			return &ProtocolError{Line: string(l)}
		}
		n, err := strconv.Atoi(string(f[2]))
		if err != nil || n < 0 {
			return &ProtocolError{Line: string(l)}
		}
		key := append([]byte(nil), f[0]...)
		if cap(cn.buf) < n+2 {
			cn.buf = make([]byte, n+2)
		}
		b := cn.buf[:n+2]
		if _, err := ioReadFull(cn.r, b); err != nil {
			return err
		}
		fn(key, b[:n])
	}
}

func (c *Client) muxFor(ctx context.Context, i int) (*Mux, error) {
	s := c.servers[i]
	s.muxMu.Lock()
	defer s.muxMu.Unlock()
	if s.mux != nil {
		select {
		case <-s.mux.done:
			_ = s.mux.Close()
			s.mux = nil
		default:
			return s.mux, nil
		}
	}
	dctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	m, err := DialMux(dctx, s.addr)
	if err != nil {
		return nil, err
	}
	s.mux = m
	return m, nil
}

// muxDo runs r on key's server's Mux, bounded by the client timeout. A
// timed-out request fails its Mux (as a timed-out pooled connection is
// closed) and is not reused.
func (c *Client) muxDo(ctx context.Context, r *MuxReq) error {
	m, err := c.muxFor(ctx, c.ring.Index(r.Key))
	if err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err = m.Do(tctx, r)
	if err != nil && tctx.Err() != nil {
		m.fail(fmt.Errorf("memcache: round trip: %w", tctx.Err()))
		return errAbandoned{err}
	}
	return err
}

// errAbandoned marks a request whose answer may still arrive: it must not
// go back to the pool.
type errAbandoned struct{ error }

func (e errAbandoned) Unwrap() error { return e.error }

func (c *Client) putReq(r *MuxReq, err error) {
	var a errAbandoned
	if errors.As(err, &a) {
		return
	}
	r.Value = r.Value[:0]
	c.reqPool.Put(r)
}

func (c *Client) req() *MuxReq {
	if r, ok := c.reqPool.Get().(*MuxReq); ok {
		return r
	}
	return NewMuxReq()
}

// Get reads key. The returned slice is a fresh copy.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	if c.useMux {
		r := c.req()
		r.Key, r.Set = key, false
		err := c.muxDo(ctx, r)
		var out []byte
		if err == nil {
			if r.Found {
				out = append([]byte(nil), r.Value...)
			} else {
				err = ErrCacheMiss
			}
		}
		c.putReq(r, err)
		return out, err
	}
	var out []byte
	found := false
	err := c.do(ctx, c.ring.Index(key), func(cn *conn) error {
		cn.w.WriteString("get ")
		cn.w.WriteString(key)
		cn.w.WriteString("\r\n")
		if err := cn.w.Flush(); err != nil {
			return err
		}
		return cn.readValues(func(_, v []byte) { out = append([]byte(nil), v...); found = true })
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrCacheMiss
	}
	return out, nil
}

// GetMulti reads keys with one multi-key get per server (the fetch_multi
// path) and calls fn for each hit; fn's value is only valid during the call.
// Servers are visited in turn; a failing server's error is returned after
// the others were read, joined with errors.Join.
func (c *Client) GetMulti(ctx context.Context, keys []string, fn func(key string, val []byte)) error {
	byServer := make(map[int][]string, len(c.servers))
	for _, k := range keys {
		i := c.ring.Index(k)
		byServer[i] = append(byServer[i], k)
	}
	var errs []error
	for i, ks := range byServer {
		err := c.do(ctx, i, func(cn *conn) error {
			cn.w.WriteString("get")
			for _, k := range ks {
				cn.w.WriteByte(' ')
				cn.w.WriteString(k)
			}
			cn.w.WriteString("\r\n")
			if err := cn.w.Flush(); err != nil {
				return err
			}
			return cn.readValues(func(k, v []byte) { fn(string(k), v) })
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// MetaGetMulti pipelines one "mg <key> v k" per key to each server and calls
// fn for hits. Meta replies are not subject to memcached 1.6.18's
// flush-per-get slowness of pipelined text gets, so this is the fast batched
// path.
func (c *Client) MetaGetMulti(ctx context.Context, keys []string, fn func(key string, val []byte)) error {
	byServer := make(map[int][]string, len(c.servers))
	for _, k := range keys {
		i := c.ring.Index(k)
		byServer[i] = append(byServer[i], k)
	}
	var errs []error
	for i, ks := range byServer {
		err := c.do(ctx, i, func(cn *conn) error {
			for _, k := range ks {
				cn.w.WriteString("mg ")
				cn.w.WriteString(k)
				cn.w.WriteString(" v\r\n")
			}
			if err := cn.w.Flush(); err != nil {
				return err
			}
			for _, k := range ks {
				r, err := cn.readMeta()
				if err != nil {
					return err
				}
				if r.Found {
					fn(k, r.Value)
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Client) store(ctx context.Context, verb, key string, val []byte, ttl int) error {
	return c.do(ctx, c.ring.Index(key), func(cn *conn) error {
		cn.w.WriteString(verb)
		cn.w.WriteByte(' ')
		cn.w.WriteString(key)
		cn.w.WriteString(" 0 ")
		cn.w.WriteString(strconv.Itoa(ttl))
		cn.w.WriteByte(' ')
		cn.w.WriteString(strconv.Itoa(len(val)))
		cn.w.WriteString("\r\n")
		cn.w.Write(val)
		cn.w.WriteString("\r\n")
		if err := cn.w.Flush(); err != nil {
			return err
		}
		l, err := cn.line()
		if err != nil {
			return err
		}
		switch string(l) {
		case "STORED":
			return nil
		case "NOT_STORED", "EXISTS":
			return ErrNotStored
		}
		return checkErrorLine(l)
	})
}

// Set stores val under key with ttl seconds (0 = no expiry).
func (c *Client) Set(ctx context.Context, key string, val []byte, ttl int) error {
	if c.useMux {
		r := c.req()
		r.Key, r.Set, r.Value, r.TTL = key, true, val, ttl
		err := c.muxDo(ctx, r)
		var a errAbandoned
		if !errors.As(err, &a) {
			r.Value = nil // do not keep the caller's buffer in the pool
			c.putReq(r, err)
		}
		return err
	}
	return c.store(ctx, "set", key, val, ttl)
}

// Add stores val only if key is absent; ErrNotStored otherwise.
func (c *Client) Add(ctx context.Context, key string, val []byte, ttl int) error {
	return c.store(ctx, "add", key, val, ttl)
}

// Delete removes key; a missing key is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	return c.do(ctx, c.ring.Index(key), func(cn *conn) error {
		cn.w.WriteString("delete ")
		cn.w.WriteString(key)
		cn.w.WriteString("\r\n")
		if err := cn.w.Flush(); err != nil {
			return err
		}
		l, err := cn.line()
		if err != nil {
			return err
		}
		if string(l) == "DELETED" || string(l) == "NOT_FOUND" {
			return nil
		}
		return checkErrorLine(l)
	})
}

// FlushAll empties every server (tests and benchmarks only).
func (c *Client) FlushAll(ctx context.Context) error {
	for i := range c.servers {
		err := c.do(ctx, i, func(cn *conn) error {
			cn.w.WriteString("flush_all\r\n")
			if err := cn.w.Flush(); err != nil {
				return err
			}
			l, err := cn.line()
			if err != nil {
				return err
			}
			if string(l) != "OK" {
				return checkErrorLine(l)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// MetaResult is the reply to a meta get.
type MetaResult struct {
	// Found is false for EN (miss).
	Found bool
	// Value is the item's data (empty for a lease placeholder). Valid until
	// the next call on the connection; MetaGet returns a copy.
	Value []byte
	// Won (W): this client won the right to (re)fill the item.
	Won bool
	// Stale (X): the item was marked stale.
	Stale bool
	// Contended (Z): another client already holds the win flag.
	Contended bool
	// TTL is the remaining TTL in seconds when requested with t (-1: none).
	TTL int
}

func (cn *conn) readMeta() (MetaResult, error) {
	l, err := cn.line()
	if err != nil {
		return MetaResult{}, err
	}
	var r MetaResult
	r.TTL = -1
	switch {
	case bytes.Equal(l, []byte("EN")):
		return r, nil
	case bytes.HasPrefix(l, []byte("VA ")), bytes.HasPrefix(l, []byte("HD")):
	default:
		return r, checkErrorLine(l)
	}
	r.Found = true
	f := bytes.Fields(l)
	size := -1
	if string(f[0]) == "VA" {
		if len(f) < 2 {
			return r, &ProtocolError{Line: string(l)}
		}
		size, err = strconv.Atoi(string(f[1]))
		if err != nil {
			return r, &ProtocolError{Line: string(l)}
		}
		f = f[2:]
	} else {
		f = f[1:]
	}
	for _, t := range f {
		switch t[0] {
		case 'W':
			r.Won = true
		case 'X':
			r.Stale = true
		case 'Z':
			r.Contended = true
		case 't':
			r.TTL, _ = strconv.Atoi(string(t[1:]))
		}
	}
	if size >= 0 {
		if cap(cn.buf) < size+2 {
			cn.buf = make([]byte, size+2)
		}
		b := cn.buf[:size+2]
		if _, err := ioReadFull(cn.r, b); err != nil {
			return r, err
		}
		r.Value = b[:size]
	}
	return r, nil
}

// MetaGet sends "mg <key> v t [N<vivify>] [R<recache>]". With vivify > 0 a
// miss creates an empty placeholder for vivify seconds and exactly one
// caller gets Won (the lease); others see Contended with an empty value.
// With recache > 0 the first caller to see a remaining TTL below recache
// wins an early refresh while others keep getting the value.
func (c *Client) MetaGet(ctx context.Context, key string, vivify, recache int) (MetaResult, error) {
	var res MetaResult
	err := c.do(ctx, c.ring.Index(key), func(cn *conn) error {
		cn.w.WriteString("mg ")
		cn.w.WriteString(key)
		cn.w.WriteString(" v t")
		if vivify > 0 {
			cn.w.WriteString(" N")
			cn.w.WriteString(strconv.Itoa(vivify))
		}
		if recache > 0 {
			cn.w.WriteString(" R")
			cn.w.WriteString(strconv.Itoa(recache))
		}
		cn.w.WriteString("\r\n")
		if err := cn.w.Flush(); err != nil {
			return err
		}
		r, err := cn.readMeta()
		if err != nil {
			return err
		}
		r.Value = append([]byte(nil), r.Value...)
		res = r
		return nil
	})
	return res, err
}

// MetaSet stores val with "ms <key> <len> T<ttl>", which also clears a
// lease placeholder's win/stale state.
func (c *Client) MetaSet(ctx context.Context, key string, val []byte, ttl int) error {
	return c.do(ctx, c.ring.Index(key), func(cn *conn) error {
		cn.w.WriteString("ms ")
		cn.w.WriteString(key)
		cn.w.WriteByte(' ')
		cn.w.WriteString(strconv.Itoa(len(val)))
		cn.w.WriteString(" T")
		cn.w.WriteString(strconv.Itoa(ttl))
		cn.w.WriteString("\r\n")
		cn.w.Write(val)
		cn.w.WriteString("\r\n")
		if err := cn.w.Flush(); err != nil {
			return err
		}
		l, err := cn.line()
		if err != nil {
			return err
		}
		if string(l) == "HD" {
			return nil
		}
		if string(l) == "NS" {
			return ErrNotStored
		}
		return checkErrorLine(l)
	})
}
