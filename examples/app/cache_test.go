package main

import (
	"errors"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

func TestBreakerOpensAfterConsecutiveFailuresAndFailsFast(t *testing.T) {
	c, err := newCache(config{Servers: []string{"127.0.0.1:1"}, Breaker: 3, Cooldown: 50 * time.Millisecond, CallTimeout: time.Second, IdleConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("i/o timeout")
	calls := 0
	fail := func() error { calls++; return boom }
	for range 3 {
		if err := c.call("k", fail); !errors.Is(err, boom) {
			t.Fatalf("closed breaker: err = %v", err)
		}
	}
	if err := c.call("k", fail); !errors.Is(err, errBreakerOpen) || calls != 3 || c.open() != 1 {
		t.Fatalf("after 3 failures: err = %v, calls = %d, open = %d; want the breaker open and no call", err, calls, c.open())
	}
	time.Sleep(60 * time.Millisecond)
	// half open: one call goes through; a miss is an answer and closes it
	if err := c.call("k", func() error { calls++; return memcache.ErrCacheMiss }); !errors.Is(err, memcache.ErrCacheMiss) || calls != 4 {
		t.Fatalf("after the cooldown: err = %v, calls = %d", err, calls)
	}
	if c.open() != 0 {
		t.Error("a miss left the breaker open")
	}
}
