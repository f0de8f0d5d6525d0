package traffic

import (
	"fmt"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/format"
)

// staleWhileRevalidate keeps entries past their logical expiry and serves
// them stale while one refresh per key and process runs in the background.
type staleWhileRevalidate struct {
	Grace time.Duration `opt:"staleWhileRevalidate"`
}

func init() {
	Register(Spec{
		Name: "staleWhileRevalidate", Doc: "serve an expired entry for this long while one refresh per key runs in the background",
		Ops:      []string{KindFetch, KindMulti},
		Counters: []CounterSpec{{MetricStaleServed, "staleServed"}},
		New:      func() Protection { return &staleWhileRevalidate{} },
	})
}

func (s *staleWhileRevalidate) Enabled() bool { return s.Grace > 0 }

func (s *staleWhileRevalidate) Validate() error {
	if s.Grace < 0 {
		return fmt.Errorf("staleWhileRevalidate: %v must be >= 0 (0 is off)", s.Grace)
	}
	return nil
}

// ttl keeps the entry in memcached for the grace period past its logical
// expiry.
func (s *staleWhileRevalidate) ttl(_ *worker, logical, stored time.Duration) (time.Duration, time.Duration) {
	return logical, stored + s.Grace
}

func (s *staleWhileRevalidate) onHit(_ *worker, _ format.Entry, _ time.Time, expired bool) hitAction {
	if expired {
		return serveStale
	}
	return serve
}

// grace is how long past its expiry an entry stays servable: an expiry of
// the hot set rewrites entries as expired instead of deleting them.
func (s *staleWhileRevalidate) grace() time.Duration { return s.Grace }

var (
	_ Protection = (*staleWhileRevalidate)(nil)
	_ ttlHook    = (*staleWhileRevalidate)(nil)
	_ hitHook    = (*staleWhileRevalidate)(nil)
)
