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
	"time"
)

// ExpireKeys deletes every key on every server at addrs (host:port, the
// servers' direct addresses, not their proxies) and returns how many
// entries were present. It deletes on every server because a service
// places keys with its own client's hashing, which the drill does not know;
// a key is on one server at most, so the others answer NOT_FOUND. Each
// server gets all its deletes in one pipelined write, so the keys expire
// within a round trip of each other.
func ExpireKeys(ctx context.Context, addrs, keys []string) (int, error) {
	if len(addrs) == 0 {
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
	out := make(chan res, len(addrs))
	for _, a := range addrs {
		go func() {
			n, err := expireOn(ctx, a, keys)
			out <- res{n, err}
		}()
	}
	total := 0
	var errs []error
	for range addrs {
		r := <-out
		total += r.n
		errs = append(errs, r.err)
	}
	if err := errors.Join(errs...); err != nil {
		return total, fmt.Errorf("expire keys: %w", err)
	}
	return total, nil
}

func expireOn(ctx context.Context, addr string, keys []string) (int, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", addr, err)
	}
	defer conn.Close()
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
	r := bufio.NewReader(conn)
	n := 0
	for range keys {
		line, err := r.ReadString('\n')
		if err != nil {
			return n, fmt.Errorf("%s: %w", addr, err)
		}
		switch strings.TrimSpace(line) {
		case "DELETED":
			n++
		case "NOT_FOUND":
		default:
			return n, fmt.Errorf("%s: unexpected reply %q", addr, strings.TrimSpace(line))
		}
	}
	if err := <-werr; err != nil {
		return n, fmt.Errorf("%s: %w", addr, err)
	}
	return n, nil
}
