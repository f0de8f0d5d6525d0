package main

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// errBreakerOpen is a call refused by an open breaker: it costs nothing.
var errBreakerOpen = errors.New("cache: breaker open")

// cache is gomemcache with a circuit breaker per server. gomemcache picks a
// server per key itself; the same ServerList picks it here first, so the
// breaker of the server a key lives on decides whether the call is made.
type cache struct {
	mc       *memcache.Client
	servers  *memcache.ServerList
	limit    int
	cooldown time.Duration

	mu       sync.Mutex
	breakers map[string]*breaker
}

// breaker counts consecutive failures of one server. Open, it fails calls
// at once until the cooldown ends, then lets calls through again (half
// open): the first failure opens it again, a success closes it.
type breaker struct {
	fails     int
	openUntil time.Time
}

// cacheOptions are one cache client's settings: the item cache's or the
// tier's.
type cacheOptions struct {
	servers              []string
	callTimeout, connect time.Duration
	breaker              int
	cooldown             time.Duration
	idle                 int
}

func newCache(o cacheOptions) (*cache, error) {
	ss := new(memcache.ServerList)
	if err := ss.SetServers(o.servers...); err != nil {
		return nil, err
	}
	mc := memcache.NewFromSelector(ss)
	mc.Timeout = o.callTimeout
	mc.MaxIdleConns = o.idle
	// A connect timeout of its own: an unreachable server should cost a
	// short connect attempt, not the whole call timeout.
	d := net.Dialer{Timeout: o.connect}
	mc.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return &cache{mc: mc, servers: ss, limit: o.breaker, cooldown: o.cooldown, breakers: map[string]*breaker{}}, nil
}

// call runs fn against the server of key, through its breaker.
func (c *cache) call(key string, fn func() error) error {
	if c.limit <= 0 {
		return fn()
	}
	addr, err := c.servers.PickServer(key)
	if err != nil {
		return err
	}
	server := addr.String()
	c.mu.Lock()
	b := c.breakers[server]
	if b == nil {
		b = &breaker{}
		c.breakers[server] = b
	}
	if time.Now().Before(b.openUntil) {
		c.mu.Unlock()
		return errBreakerOpen
	}
	c.mu.Unlock()
	err = fn()
	c.mu.Lock()
	defer c.mu.Unlock()
	// A miss is an answer: only a failure to talk to the server counts.
	if err == nil || errors.Is(err, memcache.ErrCacheMiss) || errors.Is(err, memcache.ErrNotStored) {
		b.fails = 0
		return err
	}
	b.fails++
	if b.fails >= c.limit {
		b.openUntil = time.Now().Add(c.cooldown)
		b.fails = c.limit - 1 // half open after the cooldown: one more failure reopens it
	}
	return err
}

// get is one cache read: the entry's bytes, memcache.ErrCacheMiss, or a
// failure.
func (c *cache) get(key string) ([]byte, error) {
	var it *memcache.Item
	err := c.call(key, func() error {
		var err error
		it, err = c.mc.Get(key)
		return err
	})
	if err != nil {
		return nil, err
	}
	return it.Value, nil
}

// set stores an entry for ttl.
func (c *cache) set(key string, value []byte, ttl time.Duration) error {
	return c.call(key, func() error {
		return c.mc.Set(&memcache.Item{Key: key, Value: value, Expiration: int32(ttl / time.Second)})
	})
}

// open is how many servers' breakers are open now.
func (c *cache) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	now := time.Now()
	for _, b := range c.breakers {
		if now.Before(b.openUntil) {
			n++
		}
	}
	return n
}
