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
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
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
// no earlier deadline. A pooled connection whose round trip failed or timed
// out is closed, never reused; a multiplexed one (WithMux) is kept.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithDialTimeout bounds connection establishment (default 250 ms), also
// to a blackholed address whose connect never completes: a short connect
// timeout is a protection of incident 004. The pool's callers beyond
// WithMaxConns wait for a connection slot bounded by their context only.
func WithDialTimeout(d time.Duration) Option { return func(c *Client) { c.dialTimeout = d } }

// WithDialAddrs dials these addresses instead of the ring names, index by
// index: the ring (and so key placement) stays that of the names given to
// New. Admin clients use it to reach the servers behind the proxies directly.
func WithDialAddrs(a []string) Option { return func(c *Client) { c.dialAddrs = a } }

// WithMux routes Get and Set through one multiplexed meta-protocol
// connection per server (see Mux) instead of the pool: concurrent callers
// then share syscalls, which roughly doubles gets per CPU-second. Other
// commands keep using the pool. A request that times out fails alone, at
// its deadline; the other requests in flight on the connection get their
// answers, and its late reply is discarded. A connection that answers
// nothing for max(2 x the timeout, 1 s) while requests wait is closed (its
// requests in flight fail), and the next call dials a new one. Default off.
func WithMux(on bool) Option { return func(c *Client) { c.useMux = on } }

// ErrMalformedKey is returned for a key memcached's protocol cannot carry:
// empty, longer than 250 bytes, or with a space or control character.
var ErrMalformedKey = errors.New("memcache: malformed key")

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
	t0          time.Time
	brFailures  int32
	brCooldown  int64 // ns
	brOpens     atomic.Int64
}

type server struct {
	br      breaker
	openErr error
	mux     atomic.Pointer[Mux]
	muxMu   sync.Mutex
	dialing chan struct{} // non-nil while a Mux dial runs; closed when it ends
	dialErr error         // the last Mux dial's error
	addr    string
	idle    chan *conn
	opened  atomic.Int64
	sem     chan struct{}
}

// New returns a client for addrs ("host:port").
func New(addrs []string, opts ...Option) (*Client, error) {
	ring, err := ketama.New(addrs)
	if err != nil {
		return nil, fmt.Errorf("memcache: %w", err)
	}
	c := &Client{ring: ring, maxConns: 64, timeout: 500 * time.Millisecond, dialTimeout: 250 * time.Millisecond, t0: time.Now()}
	for _, o := range opts {
		o(c)
	}
	if c.maxConns < 1 {
		return nil, errors.New("memcache: max conns must be >= 1")
	}
	if c.timeout <= 0 || c.dialTimeout <= 0 {
		return nil, errors.New("memcache: timeouts must be > 0")
	}
	if c.dialAddrs != nil && len(c.dialAddrs) != len(addrs) {
		return nil, fmt.Errorf("memcache: %d dial addresses for %d servers", len(c.dialAddrs), len(addrs))
	}
	for i, a := range addrs {
		if c.dialAddrs != nil {
			a = c.dialAddrs[i]
		}
		c.servers = append(c.servers, &server{
			addr: a, idle: make(chan *conn, c.maxConns), sem: make(chan struct{}, c.maxConns),
			openErr: &breakerOpenError{addr: a},
		})
	}
	return c, nil
}

// Servers returns the server addresses in ring order.
func (c *Client) Servers() []string { return c.ring.Servers() }

// ServerIndex returns the index of key's server.
func (c *Client) ServerIndex(key string) int { return c.index(key) }

// index places key on the ring; with one server there is nothing to hash.
func (c *Client) index(key string) int {
	if len(c.servers) == 1 {
		return 0
	}
	return c.ring.Index(key)
}

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
		if m := s.mux.Swap(nil); m != nil {
			_ = m.Close()
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

func validKey(k string) bool {
	if len(k) == 0 || len(k) > 250 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] == 0x7f {
			return false
		}
	}
	return true
}

func (c *Client) acquire(ctx context.Context, s *server, t ticket) (*conn, error) {
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
		return nil, &waitError{addr: s.addr, err: ctx.Err()}
	}
	if !c.stillAdmitted(s, t) {
		<-s.sem
		return nil, s.openErr
	}
	d := net.Dialer{Timeout: c.dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		<-s.sem
		return nil, &dialError{addr: s.addr, err: err}
	}
	s.opened.Add(1)
	return newConn(nc, s), nil
}

func (cn *conn) close() {
	_ = cn.nc.Close()
	cn.srv.opened.Add(-1)
	<-cn.srv.sem
}

// release returns cn to its pool, or closes it after an error that may
// have left the stream out of step (a half-read reply, a timeout, an
// ERROR or CLIENT_ERROR reply after which memcached may still answer the
// rest of the request).
func (c *Client) release(cn *conn, err error) {
	if err != nil && err != ErrCacheMiss && err != ErrNotStored {
		se, ok := err.(*ServerError)
		if !ok || !strings.HasPrefix(se.Line, "SERVER_ERROR") {
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

// do runs fn on a connection to server i, through the server's breaker.
func (c *Client) do(ctx context.Context, i int, fn func(*conn) error) error {
	s := c.servers[i]
	t, err := c.admit(s)
	if err != nil {
		return err
	}
	cn, err := c.acquire(ctx, s, t)
	if err == nil {
		c.deadline(ctx, cn)
		err = fn(cn)
		c.release(cn, err)
	}
	c.settle(s, t, err)
	return err
}

func (c *Client) muxFor(ctx context.Context, s *server) (*Mux, error) {
	if m := s.mux.Load(); m != nil && !m.dead.Load() {
		return m, nil
	}
	for {
		s.muxMu.Lock()
		if m := s.mux.Load(); m != nil {
			if !m.dead.Load() {
				s.muxMu.Unlock()
				return m, nil
			}
			s.mux.Store(nil)
			go m.Close() // waits for its goroutines; not on the caller's time
		}
		if ch := s.dialing; ch != nil {
			// one dial at a time per server; the others wait for it, each
			// bounded by its own context
			s.muxMu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, &waitError{addr: s.addr, err: ctx.Err()}
			}
			s.muxMu.Lock()
			m, err := s.mux.Load(), s.dialErr
			s.muxMu.Unlock()
			if m != nil && !m.dead.Load() {
				return m, nil
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		ch := make(chan struct{})
		s.dialing = ch
		s.muxMu.Unlock()
		// the dial is shared: a caller giving up must not cancel it for
		// the others, and it is bounded by the dial timeout anyway
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.dialTimeout)
		m, err := dialMux(dctx, s.addr, c.timeout)
		cancel()
		s.muxMu.Lock()
		s.dialing = nil
		if err != nil {
			var de *dialError
			if !errors.As(err, &de) {
				err = &dialError{addr: s.addr, err: err}
			}
			s.dialErr = err
		} else {
			s.dialErr = nil
			s.mux.Store(m)
		}
		close(ch)
		s.muxMu.Unlock()
		return m, err
	}
}

// muxDo runs r on key's server's Mux, through the server's breaker and
// bounded by the client timeout (the Mux's own: see dialMux).
func (c *Client) muxDo(ctx context.Context, r *MuxReq) error {
	s := c.servers[c.index(r.Key)]
	t, err := c.admit(s)
	if err != nil {
		return err
	}
	err = c.muxRoundTrip(ctx, s, r)
	c.settle(s, t, err)
	return err
}

func (c *Client) muxRoundTrip(ctx context.Context, s *server, r *MuxReq) error {
	m, err := c.muxFor(ctx, s)
	if err != nil {
		return err
	}
	return m.Do(ctx, r)
}

// putReq gives r back for reuse: once Do returned nothing refers to it.
func (c *Client) putReq(r *MuxReq) {
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
	return c.GetInto(ctx, key, nil)
}

// GetInto reads key and appends its value to dst[:0], so a caller reusing
// dst reads without allocating. On a miss it returns ErrCacheMiss.
func (c *Client) GetInto(ctx context.Context, key string, dst []byte) ([]byte, error) {
	if !validKey(key) {
		return nil, ErrMalformedKey
	}
	dst = dst[:0]
	if c.useMux {
		r := c.req()
		r.Key, r.Set = key, false
		err := c.muxDo(ctx, r)
		if err == nil {
			if r.Found {
				dst = append(dst, r.Value...)
			} else {
				err = ErrCacheMiss
			}
		}
		c.putReq(r)
		if err != nil {
			return nil, err
		}
		return dst, nil
	}
	found := false
	err := c.do(ctx, c.index(key), func(cn *conn) error {
		cn.wb = append(append(append(cn.wb, "get "...), key...), "\r\n"...)
		if err := cn.send(); err != nil {
			return err
		}
		return cn.readValues(func(_, v []byte) { dst = append(dst, v...); found = true })
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrCacheMiss
	}
	return dst, nil
}

func (c *Client) byServer(keys []string) (map[int][]string, error) {
	byServer := make(map[int][]string, len(c.servers))
	for _, k := range keys {
		if !validKey(k) {
			return nil, ErrMalformedKey
		}
		i := c.index(k)
		byServer[i] = append(byServer[i], k)
	}
	return byServer, nil
}

// GetMulti reads keys with one multi-key get per server (the fetch_multi
// path) and calls fn for each hit; fn's value is only valid during the call.
// Servers are visited in turn; a failing server's error is returned after
// the others were read, joined with errors.Join.
func (c *Client) GetMulti(ctx context.Context, keys []string, fn func(key string, val []byte)) error {
	byServer, err := c.byServer(keys)
	if err != nil {
		return err
	}
	var errs []error
	for i, ks := range byServer {
		err := c.do(ctx, i, func(cn *conn) error {
			cn.wb = append(cn.wb, "get"...)
			for _, k := range ks {
				cn.wb = append(append(cn.wb, ' '), k...)
			}
			cn.wb = append(cn.wb, "\r\n"...)
			if err := cn.send(); err != nil {
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

// MetaGetMulti pipelines one "mg <key> v" per key to each server and calls
// fn for hits. Meta replies are not subject to memcached 1.6.18's
// flush-per-get slowness of pipelined text gets, so this is the fast batched
// path.
func (c *Client) MetaGetMulti(ctx context.Context, keys []string, fn func(key string, val []byte)) error {
	byServer, err := c.byServer(keys)
	if err != nil {
		return err
	}
	var errs []error
	for i, ks := range byServer {
		err := c.do(ctx, i, func(cn *conn) error {
			for _, k := range ks {
				cn.wb = append(append(append(cn.wb, "mg "...), k...), " v\r\n"...)
			}
			if err := cn.send(); err != nil {
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
	if !validKey(key) {
		return ErrMalformedKey
	}
	return c.do(ctx, c.index(key), func(cn *conn) error {
		b := append(append(append(append(cn.wb, verb...), ' '), key...), " 0 "...)
		b = strconv.AppendInt(b, int64(ttl), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(len(val)), 10)
		b = append(append(append(b, "\r\n"...), val...), "\r\n"...)
		cn.wb = b
		if err := cn.send(); err != nil {
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
		if !validKey(key) {
			return ErrMalformedKey
		}
		r := c.req()
		r.Key, r.Set, r.Value, r.TTL = key, true, val, ttl
		err := c.muxDo(ctx, r)
		r.Value = nil // do not keep the caller's buffer in the pool
		c.putReq(r)
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
	if !validKey(key) {
		return ErrMalformedKey
	}
	return c.do(ctx, c.index(key), func(cn *conn) error {
		cn.wb = append(append(append(cn.wb, "delete "...), key...), "\r\n"...)
		if err := cn.send(); err != nil {
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
			cn.wb = append(cn.wb, "flush_all\r\n"...)
			if err := cn.send(); err != nil {
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

// MetaGet sends "mg <key> v t [N<vivify>] [R<recache>]". With vivify > 0 a
// miss creates an empty placeholder for vivify seconds and exactly one
// caller gets Won (the lease); others see Contended with an empty value.
// With recache > 0 the first caller to see a remaining TTL below recache
// wins an early refresh while others keep getting the value.
func (c *Client) MetaGet(ctx context.Context, key string, vivify, recache int) (MetaResult, error) {
	if !validKey(key) {
		return MetaResult{}, ErrMalformedKey
	}
	var res MetaResult
	err := c.do(ctx, c.index(key), func(cn *conn) error {
		b := append(append(append(cn.wb, "mg "...), key...), " v t"...)
		if vivify > 0 {
			b = strconv.AppendInt(append(b, " N"...), int64(vivify), 10)
		}
		if recache > 0 {
			b = strconv.AppendInt(append(b, " R"...), int64(recache), 10)
		}
		cn.wb = append(b, "\r\n"...)
		if err := cn.send(); err != nil {
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
	if !validKey(key) {
		return ErrMalformedKey
	}
	return c.do(ctx, c.index(key), func(cn *conn) error {
		b := append(append(append(cn.wb, "ms "...), key...), ' ')
		b = strconv.AppendInt(b, int64(len(val)), 10)
		b = strconv.AppendInt(append(b, " T"...), int64(ttl), 10)
		cn.wb = append(append(append(b, "\r\n"...), val...), "\r\n"...)
		if err := cn.send(); err != nil {
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
