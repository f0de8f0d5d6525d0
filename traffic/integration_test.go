//go:build integration

package traffic_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/traffic"
	"github.com/firedrill-dev/firedrill/traffic/format"
	"github.com/firedrill-dev/firedrill/traffic/memcache"
)

// The environment comes from environments.Up (Docker; the tests fail if it
// cannot start). FIREDRILL_TEST_HOST=1 with FIREDRILL_* variables set uses
// already running servers instead, for development on a host.
var env struct {
	cache, direct []string
	dsn, adminDSN string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	if os.Getenv("FIREDRILL_TEST_HOST") == "1" {
		env.cache = strings.Split(os.Getenv("FIREDRILL_MEMCACHED"), ",")
		env.direct = strings.Split(os.Getenv("FIREDRILL_MEMCACHED_DIRECT"), ",")
		env.dsn = os.Getenv("FIREDRILL_MYSQL_DSN")
		env.adminDSN = os.Getenv("FIREDRILL_MYSQL_ADMIN_DSN")
	} else {
		upCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		e, err := environments.Up(upCtx, environments.WithMemcached(2))
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "integration: environments.Up failed (Docker is required):", err)
			if e != nil {
				_ = e.Down(context.Background())
			}
			return 1
		}
		defer func() { _ = e.Down(context.Background()) }()
		for _, s := range e.Memcached {
			env.cache = append(env.cache, s.ProxyAddr)
			env.direct = append(env.direct, s.DirectAddr)
		}
		env.dsn, env.adminDSN = e.DB.DSN, e.DB.AdminDSN
	}
	sc := traffic.NewSeedConfig()
	sc.DSN, sc.Rows, sc.Table = env.adminDSN, 20000, "it_records"
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := traffic.Seed(sctx, sc); err != nil {
		fmt.Fprintln(os.Stderr, "integration: seed:", err)
		return 1
	}
	return m.Run()
}

// recorder keeps every pushed sample.
type recorder struct {
	mu      sync.Mutex
	samples []traffic.Sample
}

func (r *recorder) Push(s []traffic.Sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s...)
	r.mu.Unlock()
}

// sum adds metric values with from <= t < to.
func (r *recorder) sum(metric string, from, to time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := 0.0
	for _, s := range r.samples {
		if s.Metric == metric && !s.Time.Before(from) && s.Time.Before(to) {
			v += s.Value
		}
	}
	return v
}

func (r *recorder) peak(metric string, from, to time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	byT := map[time.Time]float64{}
	for _, s := range r.samples {
		if s.Metric == metric && !s.Time.Before(from) && s.Time.Before(to) {
			byT[s.Time] += s.Value
		}
	}
	m := 0.0
	for _, v := range byT {
		m = max(m, v)
	}
	return m
}

func flushAll(t *testing.T) {
	t.Helper()
	mc, err := memcache.New(env.direct)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	if err := mc.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func baseConfig(opts ...traffic.Option) traffic.Config {
	c := traffic.NewConfig(append([]traffic.Option{
		traffic.WithCacheAddrs(env.cache...), traffic.WithDSN(env.dsn), traffic.WithKeys(20000, 20000),
	}, opts...)...)
	c.AdminCacheAddrs = env.direct
	c.Table = "it_records"
	c.HDROut = ""
	c.Processes = 4
	c.PoolSize = 8
	return c
}

func TestHitAndMissFill(t *testing.T) {
	flushAll(t)
	c := baseConfig(traffic.WithRate(1000), traffic.WithDuration(2*time.Second))
	c.Warm = 0
	rec := &recorder{}
	e, err := traffic.New(c, rec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary: %+v", s)
	if s.Operations < 1800 || s.Operations > 2000 {
		t.Errorf("operations = %d, want about rate x duration (<= 2000)", s.Operations)
	}
	if s.Misses == 0 || s.DBQueries == 0 {
		t.Errorf("expected misses and fills on a cold cache: %+v", s)
	}
	if s.Hits == 0 || s.HitRatio() < 0.3 {
		t.Errorf("expected hits after fills (Zipf 0.99): hit ratio %.2f", s.HitRatio())
	}
	if len(s.Errors) != 0 {
		t.Errorf("errors: %v", s.Errors)
	}
	// the most popular key was filled in the legacy format, on the server
	// ketama places it on
	key := e.Keys().Key(traffic.HotSetIDs(1, 20000)[0])
	mc, _ := memcache.New(env.cache, memcache.WithDialAddrs(env.direct))
	defer mc.Close()
	v, err := mc.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("hot key %s not cached: %v", key, err)
	}
	if f, _ := format.Detect(v); f != format.Legacy {
		t.Errorf("hot key format = %v, want legacy", f)
	}
}
