package environments

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go/wait"
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

// toxiproxyAdmin is the few Toxiproxy API calls the environment needs to set
// up proxies; faults/toxiproxy is the full client.
type toxiproxyAdmin struct{ url string }

func (t toxiproxyAdmin) create(ctx context.Context, name, listen, upstream string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body := fmt.Sprintf(`{"name":%q,"listen":%q,"upstream":%q,"enabled":true}`, name, listen, upstream)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/proxies", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("create proxy %s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("create proxy %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create proxy %s: toxiproxy answered %s", name, resp.Status)
	}
	return nil
}

// Reset removes every toxic and re-enables every proxy: the harness's
// backstop after k6 exits, whatever the script did or failed to undo.
func Reset(ctx context.Context, toxiproxyURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, toxiproxyURL+"/reset", nil)
	if err != nil {
		return fmt.Errorf("reset toxiproxy: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset toxiproxy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("reset toxiproxy: answered %s", resp.Status)
	}
	return nil
}
