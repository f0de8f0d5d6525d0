package memcache

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrBreakerOpen is returned (wrapped, test with errors.Is) by a call
// routed to a server whose circuit breaker is open: the call failed fast,
// without dialing or sending anything. See WithBreaker.
var ErrBreakerOpen = errors.New("memcache: circuit breaker open")

// WithBreaker turns on a circuit breaker per server. After failures
// consecutive calls to one server fail with a timeout, a connect error, a
// refused or a reset connection (cache misses, NOT_STORED and error replies
// are answers, not failures), the server's breaker opens: every call routed
// to it returns ErrBreakerOpen at once, without dialing. After cooldown one
// trial call is let through (half-open): if it succeeds the breaker closes,
// if it fails it opens for another cooldown. failures == 0 (the default)
// turns the breaker off; cooldown <= 0 means 1 s.
//
// It applies to every command and to the Mux path. A breaker guards the
// callers' time (the protection of incident 004, a blackholed server), not
// the server: a closed breaker costs two atomic loads per call.
func WithBreaker(failures int, cooldown time.Duration) Option {
	return func(c *Client) {
		c.brFailures = int32(max(failures, 0))
		if cooldown <= 0 {
			cooldown = time.Second
		}
		c.brCooldown = int64(cooldown)
	}
}

// BreakerOpens returns how many times any server's breaker opened
// (including re-opening after a failed trial call).
func (c *Client) BreakerOpens() int64 { return c.brOpens.Load() }

// BreakersOpen returns how many servers' breakers are open or half-open now.
func (c *Client) BreakersOpen() int {
	n := 0
	for _, s := range c.servers {
		if s.br.state.Load() != brClosed {
			n++
		}
	}
	return n
}

const (
	brClosed = 0
	brTrial  = -1 // half-open: the trial call is running
	// other values: open until this c.now() value
)

// breaker is a server's breaker state; all fields are atomics.
type breaker struct {
	state atomic.Int64
	fails atomic.Int32
	// epoch counts closings: a call admitted before the last closing
	// reports an outcome about the old incarnation and is ignored.
	epoch atomic.Uint64
}

// ticket is one admitted call.
type ticket struct {
	epoch uint64
	trial bool
}

type breakerOpenError struct{ addr string }

func (e *breakerOpenError) Error() string { return "memcache: " + e.addr + ": circuit breaker open" }
func (e *breakerOpenError) Unwrap() error { return ErrBreakerOpen }

// now is monotonic nanoseconds since the client was made, >= 1.
func (c *Client) now() int64 { return int64(time.Since(c.t0)) + 1 }

// admit lets a call to s through, or fails it fast.
func (c *Client) admit(s *server) (ticket, error) {
	if c.brFailures == 0 {
		return ticket{}, nil
	}
	b := &s.br
	ep := b.epoch.Load()
	st := b.state.Load()
	if st == brClosed {
		return ticket{epoch: ep}, nil
	}
	if st == brTrial || c.now() < st {
		return ticket{}, s.openErr
	}
	if b.state.CompareAndSwap(st, brTrial) {
		return ticket{epoch: ep, trial: true}, nil
	}
	return ticket{}, s.openErr
}

// stillAdmitted is checked before dialing: a call that waited for a
// connection slot while the breaker opened fails fast instead of dialing.
func (c *Client) stillAdmitted(s *server, t ticket) bool {
	return c.brFailures == 0 || t.trial || s.br.state.Load() == brClosed
}

type outcome uint8

const (
	outSuccess outcome = iota // the server answered
	outFailure                // timeout, connect error, refused, reset
	outNeutral                // says nothing about the server
)

// waitError is a caller's context ending while it waited for a connection
// slot: nothing was sent, so it says nothing about the server.
type waitError struct {
	addr string
	err  error
}

func (e *waitError) Error() string {
	return "memcache: waiting for a connection to " + e.addr + ": " + e.err.Error()
}
func (e *waitError) Unwrap() error { return e.err }

// dialError is a failed connect.
type dialError struct {
	addr string
	err  error
}

func (e *dialError) Error() string { return "memcache: dial " + e.addr + ": " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func classify(err error) outcome {
	// a hand-written unwrap: errors.As would allocate its targets
	for err != nil {
		switch e := err.(type) {
		case *ServerError:
			return outSuccess
		case *ProtocolError, *waitError, *breakerOpenError:
			return outNeutral
		case *dialError:
			if errors.Is(e.err, context.Canceled) {
				return outNeutral
			}
			return outFailure
		case syscall.Errno:
			switch e {
			case syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNABORTED,
				syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT:
				return outFailure
			}
			return outNeutral
		}
		switch err {
		case ErrCacheMiss, ErrNotStored:
			return outSuccess
		case context.Canceled, net.ErrClosed, ErrBreakerOpen, ErrMalformedKey:
			return outNeutral
		case context.DeadlineExceeded, os.ErrDeadlineExceeded, io.EOF, io.ErrUnexpectedEOF:
			return outFailure
		}
		if t, ok := err.(interface{ Timeout() bool }); ok && t.Timeout() {
			return outFailure
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			o := outNeutral
			for _, e := range u.Unwrap() {
				o = min(o, classify(e)) // success < failure < neutral
			}
			return o
		default:
			return outNeutral
		}
	}
	return outSuccess
}

// settle records a call's outcome.
func (c *Client) settle(s *server, t ticket, err error) {
	if c.brFailures == 0 {
		return
	}
	b := &s.br
	o := classify(err)
	if t.trial {
		switch o {
		case outSuccess:
			b.fails.Store(0)
			b.epoch.Add(1)
			b.state.Store(brClosed)
		case outFailure:
			b.state.Store(c.now() + c.brCooldown)
			c.brOpens.Add(1)
		default:
			// the trial proved nothing: the next call may try at once
			b.state.Store(1)
		}
		return
	}
	if o == outNeutral || b.epoch.Load() != t.epoch {
		return
	}
	if o == outSuccess {
		if b.fails.Load() != 0 {
			b.fails.Store(0)
		}
		return
	}
	if b.fails.Add(1) >= c.brFailures && b.state.CompareAndSwap(brClosed, c.now()+c.brCooldown) {
		c.brOpens.Add(1)
	}
}
