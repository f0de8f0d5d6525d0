package environments

import (
	"context"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/firedrill-dev/firedrill/faults/toxiproxy"
)

// memcachedStrategy waits until memcached answers `version` on its published
// port: an open port alone does not prove the server serves.
type memcachedStrategy struct {
	port    string
	timeout time.Duration
}

var _ wait.Strategy = (*memcachedStrategy)(nil)

func memcachedReady(port string) *memcachedStrategy {
	return &memcachedStrategy{port: port, timeout: time.Minute}
}

func (s *memcachedStrategy) withTimeout(d time.Duration) *memcachedStrategy {
	s.timeout = d
	return s
}

// WaitUntilReady polls memcached's version command through the mapped port.
func (s *memcachedStrategy) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var last error
	for {
		port, err := target.MappedPort(ctx, s.port)
		if err == nil {
			if _, err = MemcachedVersion(ctx, "127.0.0.1:"+port.Port()); err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("memcached not answering version on %s: %w (last: %v)", s.port, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// toxiproxyCallTimeout bounds each Toxiproxy API call the environment makes
// itself: creating the proxies, and the harness's reset.
const toxiproxyCallTimeout = 10 * time.Second

// toxiproxyClient is faults/toxiproxy's client for the environment's own
// calls; faults injected by drills go through k6/x/toxiproxy instead.
func toxiproxyClient(url string) (*toxiproxy.Client, error) {
	return toxiproxy.New(url, toxiproxy.WithTimeout(toxiproxyCallTimeout))
}

// Reset removes every toxic and re-enables every proxy: the harness's
// backstop after k6 exits, whatever the script did or failed to undo.
func Reset(ctx context.Context, toxiproxyURL string) error {
	c, err := toxiproxyClient(toxiproxyURL)
	if err != nil {
		return err
	}
	return c.Reset(ctx)
}
