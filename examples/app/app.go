package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/singleflight"

	"github.com/firedrill-dev/firedrill/traffic/format"
)

// app serves the routes.
type app struct {
	cfg    config
	db     *sql.DB
	cache  *cache
	reader format.Reader
	fills  singleflight.Group
	m      *metrics
	reg    *prometheus.Registry

	workers chan struct{} // a token per request being served
	waiting atomic.Int64  // requests waiting for a token

	tier    *cache      // nil without TIER
	tierOff atomic.Bool // the tier's feature flag is off (TIER_FLAG)
	stop    chan struct{}
}

func newApp(cfg config) (*app, error) {
	dcfg, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("DB_DSN: %w", err)
	}
	db, err := sql.Open("mysql", dcfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	db.SetMaxOpenConns(cfg.DBMaxConns)
	db.SetMaxIdleConns(cfg.DBMaxConns)
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	c, err := newCache(cacheOptions{servers: cfg.Servers, callTimeout: cfg.CallTimeout, connect: cfg.DialTimeout,
		breaker: cfg.Breaker, cooldown: cfg.Cooldown, idle: cfg.IdleConns})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("MEMCACHED: %w", err)
	}
	a := &app{
		cfg: cfg, db: db, cache: c, m: m, reg: reg,
		reader:  format.Reader{Version: cfg.Format, Compatible: cfg.CompatRead},
		workers: make(chan struct{}, cfg.Workers),
		stop:    make(chan struct{}),
	}
	if len(cfg.Tier) > 0 {
		if a.tier, err = newCache(cacheOptions{servers: cfg.Tier, callTimeout: cfg.TierTimeout, connect: cfg.TierConnectTimeout,
			breaker: cfg.TierBreaker, cooldown: cfg.Cooldown, idle: cfg.IdleConns}); err != nil {
			db.Close()
			return nil, fmt.Errorf("TIER: %w", err)
		}
		if cfg.TierFlag {
			go a.probeTier(time.Second)
		}
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "workers_busy", Help: "requests being served"},
		func() float64 { return float64(len(a.workers)) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "queue_waiting", Help: "requests waiting for a worker"},
		func() float64 { return float64(a.waiting.Load()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "breakers_open", Help: "cache servers whose breaker is open"},
		func() float64 { return float64(a.cache.open()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "db_connections_open", Help: "open database connections"},
		func() float64 { return float64(a.db.Stats().OpenConnections) }))
	return a, nil
}

func (a *app) close() {
	close(a.stop)
	a.db.Close()
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.health)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /items/{id}", a.limited(a.item))
	return mux
}

// health answers 200 once the database answers (and, with a warm pool,
// once the pool is full): a service that cannot reach its database is not
// ready to take traffic.
func (a *app) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	err := a.db.PingContext(ctx)
	if err == nil && a.cfg.WarmPool {
		err = a.warm(ctx)
	}
	if err != nil {
		http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ok %s\n", a.cfg.Release)
}

// warm opens the pool to DB_MAX_CONNS connections, held all at once (the
// pool hands out an idle one before it dials), then leaves them idle.
func (a *app) warm(ctx context.Context) error {
	if a.db.Stats().OpenConnections >= a.cfg.DBMaxConns {
		return nil
	}
	conns := make([]*sql.Conn, 0, a.cfg.DBMaxConns)
	defer func() {
		for _, c := range conns {
			c.Close() // back to the pool, idle
		}
	}()
	for range a.cfg.DBMaxConns {
		c, err := a.db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("warm pool: %w", err)
		}
		conns = append(conns, c)
	}
	return nil
}

// limited serves h on one of the pool's workers. A request that finds the
// queue full, or waits longer than QUEUE_TIMEOUT for a worker, is shed
// with 503 at once: serving capacity is bounded, as a fleet's is.
func (a *app) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case a.workers <- struct{}{}:
		default:
			if a.waiting.Add(1) > int64(a.cfg.Queue) {
				a.waiting.Add(-1)
				a.shed(w, start, "queue full")
				return
			}
			t := time.NewTimer(a.cfg.QueueTimeout)
			select {
			case a.workers <- struct{}{}:
				t.Stop()
				a.waiting.Add(-1)
			case <-t.C:
				a.waiting.Add(-1)
				a.shed(w, start, "no worker within the queue timeout")
				return
			case <-r.Context().Done():
				t.Stop()
				a.waiting.Add(-1)
				return
			}
		}
		defer func() { <-a.workers }()
		h(w, r)
	}
}

func (a *app) shed(w http.ResponseWriter, start time.Time, why string) {
	a.m.shed.Inc()
	a.done(start, http.StatusServiceUnavailable)
	http.Error(w, "overloaded: "+why, http.StatusServiceUnavailable)
}

func (a *app) done(start time.Time, code int) {
	a.m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	a.m.latency.Observe(time.Since(start).Seconds())
}

// item reads the item's CACHE_CALLS entries one after the other, each
// through the cache, filling misses from the database: each miss with a
// query of its own, or (DB_ONE_READ) all of them with one read of the
// item after the cache calls.
func (a *app) item(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		a.done(start, http.StatusBadRequest)
		http.Error(w, "id: want a positive integer", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	if a.cfg.Budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.cfg.Budget)
		defer cancel()
	}
	var hits, misses, degraded int
	var store []string // with one read: the missed parts whose cache answered
	for part := range a.cfg.Calls {
		if ctx.Err() != nil {
			a.done(start, http.StatusServiceUnavailable)
			http.Error(w, "request budget spent", http.StatusServiceUnavailable)
			return
		}
		var hit, ok bool
		if a.cfg.OneRead {
			key := partKey(id, part)
			if hit, ok = a.lookup(key); !hit && ok {
				store = append(store, key)
			}
		} else if hit, ok, err = a.entry(ctx, id, part); err != nil {
			a.failed(w, start, id, err)
			return
		}
		if hit {
			hits++
		} else {
			misses++
		}
		if !ok {
			degraded++
		}
	}
	if a.cfg.OneRead && misses > 0 {
		if err := a.fillOnce(ctx, fmt.Sprintf("item:%d", id), id, store...); err != nil {
			a.failed(w, start, id, err)
			return
		}
	}
	a.telemetry(ctx, id)
	a.done(start, http.StatusOK)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "release": a.cfg.Release, "parts": a.cfg.Calls, "hits": hits,
		"misses": misses, "cache_errors": degraded})
}

// failed answers a request whose item could not be read.
func (a *app) failed(w http.ResponseWriter, start time.Time, id uint64, err error) {
	if errors.Is(err, sql.ErrNoRows) {
		a.done(start, http.StatusNotFound)
		http.Error(w, "no item "+strconv.FormatUint(id, 10), http.StatusNotFound)
		return
	}
	a.m.failed.Inc()
	a.done(start, http.StatusServiceUnavailable)
	http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
}

func partKey(id uint64, part int) string { return fmt.Sprintf("item:%d:%d", id, part) }

// lookup is one cache call. hit is a usable entry; ok is false when the
// cache failed (timeout, open breaker), which the request survives by
// reading the database.
func (a *app) lookup(key string) (hit, ok bool) {
	a.m.cacheCalls.Inc()
	b, err := a.cache.get(key)
	switch {
	case err == nil:
		if _, derr := a.reader.Decode(b); derr == nil {
			a.m.cacheHits.Inc()
			return true, true
		} else if errors.Is(derr, format.ErrForeign) {
			// The other release's format: a miss for this reader, the
			// mechanism of incident 000.
			a.m.foreign.Inc()
		}
		a.m.cacheMisses.Inc()
		return false, true
	case errors.Is(err, memcache.ErrCacheMiss):
		a.m.cacheMisses.Inc()
		return false, true
	}
	a.m.cacheErrors.WithLabelValues(errClass(err)).Inc()
	return false, false
}

// entry is one cache call and, on a miss, a fill of that part from the
// database.
func (a *app) entry(ctx context.Context, id uint64, part int) (hit, ok bool, err error) {
	key := partKey(id, part)
	if hit, ok = a.lookup(key); hit {
		return true, true, nil
	}
	var store []string
	if ok {
		store = []string{key}
	}
	return false, ok, a.fillOnce(ctx, key, id, store...)
}

// fillOnce runs fill, coalesced under key when CACHE_COALESCE is on: one
// fill per key in this process, the others wait for it.
func (a *app) fillOnce(ctx context.Context, key string, id uint64, store ...string) error {
	if !a.cfg.Coalesce {
		return a.fill(ctx, id, store...)
	}
	_, err, _ := a.fills.Do(key, func() (any, error) { return nil, a.fill(ctx, id, store...) })
	return err
}

// fill reads the item from the database and stores it under each of keys
// (the parts whose cache answered). With one read the query goes as
// text, one round trip; a query with a placeholder is prepared first, a
// second round trip (the driver's default). The id is a parsed uint64, so
// formatting it into the query cannot inject anything.
func (a *app) fill(ctx context.Context, id uint64, keys ...string) error {
	qctx := ctx
	if a.cfg.DBTimeout > 0 {
		var cancel context.CancelFunc
		qctx, cancel = context.WithTimeout(ctx, a.cfg.DBTimeout)
		defer cancel()
	}
	a.m.dbQueries.Inc()
	t0 := time.Now()
	var version uint32
	var payload []byte
	var row *sql.Row
	if a.cfg.OneRead {
		row = a.db.QueryRowContext(qctx, fmt.Sprintf("SELECT version, payload FROM %s WHERE id = %d", a.cfg.Table, id))
	} else {
		row = a.db.QueryRowContext(qctx, "SELECT version, payload FROM "+a.cfg.Table+" WHERE id = ?", id)
	}
	err := row.Scan(&version, &payload)
	a.m.dbLatency.Observe(time.Since(t0).Seconds())
	if err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			a.m.dbErrors.Inc()
		}
		return err
	}
	for _, key := range keys {
		ttl := a.cfg.TTL
		if a.cfg.TTLJitter > 0 {
			ttl -= time.Duration(rand.Float64() * a.cfg.TTLJitter * float64(ttl))
		}
		e, err := format.Encode(nil, format.Entry{
			Version: a.cfg.Format, ExpiresAt: time.Now().Add(ttl).UnixMilli(),
			FillMillis: uint32(time.Since(t0).Milliseconds()), RowVersion: version, Payload: payload,
		})
		if err != nil {
			return err
		}
		if err := a.cache.set(key, e, max(ttl, time.Second)); err != nil {
			a.m.cacheErrors.WithLabelValues(errClass(err)).Inc()
		}
	}
	return nil
}

// errClass names a cache failure for the metrics.
func errClass(err error) string {
	var cte *memcache.ConnectTimeoutError
	switch {
	case errors.Is(err, errBreakerOpen):
		return "breaker_open"
	case errors.As(err, &cte):
		return "connect_timeout"
	case isTimeout(err):
		return "timeout"
	}
	return "other"
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
