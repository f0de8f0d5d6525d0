// Package memcached expires cache entries at one instant, on the servers
// themselves: the trigger of a hot-set expiry for a service whose client
// library and key placement firedrill does not control.
package memcached

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// ExpireKeys deletes every key on every server at addrs (host:port, the
// servers' direct addresses, not their proxies) and returns how many
// entries were present. It deletes on every server because a service
// places keys with its own client's hashing, which the drill does not know;
// a key is on one server at most, so the others answer NOT_FOUND. Each
// server gets all its deletes in one pipelined write, so the keys expire
// within a round trip of each other. It dials each server for this one
// call: a caller that deletes often keeps an Expirer.
func ExpireKeys(ctx context.Context, addrs, keys []string) (int, error) {
	e := NewExpirer(addrs)
	defer e.Close()
	return e.Expire(ctx, keys)
}

// Expirer deletes keys as ExpireKeys does, over one connection to each
// server kept between calls, so a steady stream of invalidations (a write
// elsewhere expiring one entry, 30 times a second) does not open three
// connections each. A connection that fails is dialled again on the next
// call. It is safe for concurrent use; calls to one server take turns.
type Expirer struct {
	servers []*expireConn
}

// NewExpirer returns an Expirer for the servers at addrs. It dials
// nothing until the first Expire.
func NewExpirer(addrs []string) *Expirer {
	e := &Expirer{}
	for _, a := range addrs {
		e.servers = append(e.servers, &expireConn{addr: a})
	}
	return e
}

// Expire deletes keys on every server and returns how many entries were
// present.
func (e *Expirer) Expire(ctx context.Context, keys []string) (int, error) {
	if len(e.servers) == 0 {
		return 0, errors.New("expire keys: no memcached servers (FIREDRILL_MEMCACHED_DIRECT is empty)")
	}
	for _, k := range keys {
		if k == "" || len(k) > 250 || strings.ContainsAny(k, " \r\n\t") {
			return 0, fmt.Errorf("expire keys: %q is not a memcached key (1 to 250 bytes, no spaces or control characters)", k)
		}
	}
	type res struct {
		n   int
		err error
	}
	out := make(chan res, len(e.servers))
	for _, sc := range e.servers {
		go func() {
			n, err := sc.expire(ctx, keys)
			out <- res{n, err}
		}()
	}
	total := 0
	var errs []error
	for range e.servers {
		r := <-out
		total += r.n
		errs = append(errs, r.err)
	}
	if err := errors.Join(errs...); err != nil {
		return total, fmt.Errorf("expire keys: %w", err)
	}
	return total, nil
}

// Close closes every connection.
func (e *Expirer) Close() error {
	var errs []error
	for _, sc := range e.servers {
		sc.mu.Lock()
		if sc.conn != nil {
			errs = append(errs, sc.conn.Close())
			sc.conn, sc.r = nil, nil
		}
		sc.mu.Unlock()
	}
	return errors.Join(errs...)
}

// expireConn is an Expirer's connection to one server.
type expireConn struct {
	addr string
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

func (sc *expireConn) expire(ctx context.Context, keys []string) (int, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.conn == nil {
		d := net.Dialer{Timeout: 2 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", sc.addr)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", sc.addr, err)
		}
		sc.conn, sc.r = conn, bufio.NewReader(conn)
	}
	n, err := deleteKeys(ctx, sc.conn, sc.r, keys)
	if err != nil {
		// the replies left unread would answer the next call's deletes
		sc.conn.Close()
		sc.conn, sc.r = nil, nil
		return n, fmt.Errorf("%s: %w", sc.addr, err)
	}
	return n, nil
}

func deleteKeys(ctx context.Context, conn net.Conn, r *bufio.Reader, keys []string) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	var sb strings.Builder
	for _, k := range keys {
		sb.WriteString("delete " + k + "\r\n")
	}
	// The replies are read while the requests are written: a server
	// stops reading once its output buffer fills.
	werr := make(chan error, 1)
	go func() {
		_, err := io.WriteString(conn, sb.String())
		werr <- err
	}()
	n := 0
	for range keys {
		line, err := r.ReadString('\n')
		if err != nil {
			conn.Close() // ends the write too
			<-werr
			return n, err
		}
		switch strings.TrimSpace(line) {
		case "DELETED":
			n++
		case "NOT_FOUND":
		default:
			conn.Close()
			<-werr
			return n, fmt.Errorf("unexpected reply %q", strings.TrimSpace(line))
		}
	}
	return n, <-werr
}
