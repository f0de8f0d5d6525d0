package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBreakerOpensAfterConsecutiveFailuresAndFailsFast(t *testing.T) {
	c, err := newCache(cacheOptions{servers: []string{"127.0.0.1:1"}, breaker: 3, cooldown: 50 * time.Millisecond, callTimeout: time.Second, connect: time.Second, idle: 1})
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

// The tier's feature flag: the first call that cannot reach the tier (a
// refused port here) turns it off, and the request's other calls are
// skipped, not made; without the flag every call is made and fails.
func TestTierFlagSkipsTheCallsOfAnUnreachableTier(t *testing.T) {
	for _, flag := range []bool{false, true} {
		cfg := config{Tier: []string{"127.0.0.1:1"}, TierCalls: 15, TierFlag: flag, TTL: time.Minute}
		tier, err := newCache(cacheOptions{servers: cfg.Tier, callTimeout: time.Second, connect: time.Second, idle: 1})
		if err != nil {
			t.Fatal(err)
		}
		a := &app{cfg: cfg, tier: tier, m: newMetrics(prometheus.NewRegistry())}
		a.telemetry(context.Background(), 7)
		calls, skipped := testutil.ToFloat64(a.m.tierCalls), testutil.ToFloat64(a.m.tierSkipped)
		errs := testutil.ToFloat64(a.m.tierErrors.WithLabelValues("other"))
		if flag && (calls != 1 || skipped != 14 || !a.tierOff.Load() || testutil.ToFloat64(a.m.tierFlagOffs) != 1) {
			t.Errorf("flag on: %v calls, %v skipped, off %t; want 1 call, 14 skipped, the flag off", calls, skipped, a.tierOff.Load())
		}
		if !flag && (calls != 15 || skipped != 0 || errs != 15 || a.tierOff.Load()) {
			t.Errorf("no flag: %v calls (%v failed), %v skipped; want 15 calls, all failed, none skipped", calls, errs, skipped)
		}
	}
}
