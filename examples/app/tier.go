package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// telemetry makes the request's TIER_CALLS calls to the tier, one after
// another, as incident 004's API request called its new shared cache many
// times: a get, and a set when the key is missing. The calls are best
// effort, as Rails.cache rescues a cache's errors: a failure is counted and
// the request goes on, so an unreachable tier costs each call its timeout.
// Behind the feature flag (TIER_FLAG) the first call that cannot reach the
// tier turns the flag off and the calls are skipped until the probe turns
// it on again. A spent request budget stops the calls.
func (a *app) telemetry(ctx context.Context, id uint64) {
	if a.tier == nil {
		return
	}
	for i := range a.cfg.TierCalls {
		if ctx.Err() != nil {
			return
		}
		if a.tierOff.Load() {
			a.m.tierSkipped.Inc()
			continue
		}
		key := fmt.Sprintf("telemetry:%d:%d", id, i)
		a.m.tierCalls.Inc()
		_, err := a.tier.get(key)
		if errors.Is(err, memcache.ErrCacheMiss) {
			err = a.tier.set(key, []byte("1"), a.cfg.TTL)
		}
		if err == nil {
			continue
		}
		a.m.tierErrors.WithLabelValues(errClass(err)).Inc()
		if a.cfg.TierFlag && a.tierOff.CompareAndSwap(false, true) {
			a.m.tierFlagOffs.Inc()
		}
	}
}

// probeTier asks the tier for a key every interval while its flag is off,
// off any request's path, and turns the flag on again once it answers (a
// hit or a miss). It ends when the app closes.
func (a *app) probeTier(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		if !a.tierOff.Load() {
			continue
		}
		if _, err := a.tier.get("telemetry:probe"); err == nil || errors.Is(err, memcache.ErrCacheMiss) {
			a.tierOff.Store(false)
		}
	}
}
