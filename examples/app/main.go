// Command app is firedrill's example service under test: a small HTTP
// service with a read-through cache, the shape of the incidents' Rails
// monolith. GET /items/{id} reads the item's entries (CACHE_CALLS of them,
// one cache call each, as one API request made many calls in incident 004)
// from memcached through github.com/bradfitz/gomemcache, and fills a miss
// from MySQL through go-sql-driver/mysql. Entries are written in one of the
// two cache formats of traffic/format (Rails 6.1 and 7.0 style, incident
// 000). A bounded worker pool serves requests, so serving capacity can run
// out; the protections (a breaker per cache server, a short connect
// timeout, request coalescing, a request budget, query timeouts) are
// settings, so one image runs with them on or off.
//
// It is built static and runs FROM scratch: `firedrill images` builds the
// tags v1 (protections on) and v2 (the regression).
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		log.Fatalf("example app: %v", err)
	}
	log.Printf("example app: %s", cfg)
	a, err := newApp(cfg)
	if err != nil {
		log.Fatalf("example app: %v", err)
	}
	defer a.close()
	srv := &http.Server{Addr: cfg.Listen, Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("example app: listening on %s", cfg.Listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("example app: %v", err)
	}
	fmt.Fprintln(os.Stderr, "example app: stopped")
}
