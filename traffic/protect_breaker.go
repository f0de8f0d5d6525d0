package traffic

import (
	"fmt"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/memcache"
)

// breaker is a circuit breaker per memcached server: after this many
// consecutive timeouts or connection failures of one server, calls to it
// fail fast (error class breaker_open; a fetch then reads the database, a
// request goes on to its next call) for the cooldown, after which one
// trial call is let through. The tier's servers have breakers of their own.
type breaker struct {
	Failures int           `opt:"breaker"`
	Cooldown time.Duration `opt:"breakerCooldown"`
}

func init() {
	Register(Spec{
		Name: "breaker", Doc: "a circuit breaker per memcached server: after this many failures in a row, fail fast for the cooldown",
		Ops:      []string{KindFetch, KindMulti, KindWrite, KindRequest},
		Counters: []CounterSpec{{MetricBreakerOpen, "breakerOpens"}},
		New:      func() Protection { return &breaker{Cooldown: time.Second} },
	})
}

func (b *breaker) Enabled() bool { return b.Failures > 0 }

func (b *breaker) Validate() error {
	switch {
	case b.Failures < 0:
		return fmt.Errorf("breaker: %d must be >= 0 (0 is off)", b.Failures)
	case b.Cooldown <= 0:
		return fmt.Errorf("breakerCooldown: %v must be > 0", b.Cooldown)
	}
	return nil
}

func (b *breaker) clientOptions() []memcache.Option {
	return []memcache.Option{memcache.WithBreaker(b.Failures, b.Cooldown)}
}

var (
	_ Protection = (*breaker)(nil)
	_ cacheHook  = (*breaker)(nil)
)
