package traffic

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Capacity is what the database served when Calibrate kept it busy with
// fills: the most fills a second it can take, which depends on the
// machine, the container's CPU quota and the fill's work.
type Capacity struct {
	FillsPerSecond float64
	// MeanMs and P99Ms are a fill's latency with Connections fills running
	// at once.
	MeanMs, P99Ms float64
	Connections   int
	FillWork      int
	Elapsed       time.Duration
}

// Calibrate measures the database's capacity for the fills cfg makes
// (FillWork included): conns connections each run fills back to back, on
// random records, through cfg's DSN, for d. Drills call it in setup and
// express their load as a share of it, so a verdict does not depend on
// the machine's speed.
func Calibrate(ctx context.Context, cfg Config, conns int, d time.Duration) (Capacity, error) {
	if err := cfg.Validate(); err != nil {
		return Capacity{}, err
	}
	if cfg.DSN == "" {
		return Capacity{}, errors.New("calibrate: no database DSN (set FIREDRILL_MYSQL_DSN)")
	}
	if conns < 1 || conns > 256 || d < 100*time.Millisecond || d > time.Minute {
		return Capacity{}, fmt.Errorf("calibrate: %d connections (1..256) for %v (100ms..1m)", conns, d)
	}
	dsn, err := interpolatingDSN(cfg.DSN)
	if err != nil {
		return Capacity{}, fmt.Errorf("calibrate: %w", err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return Capacity{}, fmt.Errorf("calibrate: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	e := &Engine{cfg: cfg}
	q := "SELECT version, payload FROM " + cfg.Table + " WHERE id = ?" + e.delayClause()
	// one fill per connection first: connections open, pages in memory
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v int64
			var p []byte
			if err := db.QueryRowContext(ctx, q, 1).Scan(&v, &p); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return Capacity{}, fmt.Errorf("calibrate: first fill: %w", err)
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	h := hdr.New(1, int64(time.Minute/time.Microsecond), 2)
	var fills int64
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(cfg.Seed, uint64(i)+0xca11))
			var v int64
			var p []byte
			for ctx.Err() == nil {
				t0 := time.Now()
				err := db.QueryRowContext(ctx, q, 1+r.Uint64N(cfg.Rows)).Scan(&v, &p)
				if ctx.Err() != nil {
					return // cut off by the end of the measurement: not counted
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				fills++
				_ = h.RecordValue(time.Since(t0).Microseconds())
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return Capacity{}, fmt.Errorf("calibrate: fill: %w", err)
	default:
	}
	if fills == 0 {
		return Capacity{}, fmt.Errorf("calibrate: no fill finished in %v: the fill's work (%d rows) is too much for the database", d, cfg.FillWork)
	}
	return Capacity{
		FillsPerSecond: float64(fills) / elapsed.Seconds(),
		MeanMs:         h.Mean() / 1000, P99Ms: float64(h.ValueAtQuantile(99)) / 1000,
		Connections: conns, FillWork: cfg.FillWork, Elapsed: elapsed,
	}, nil
}
