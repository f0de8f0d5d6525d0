// Command engine_bench measures the whole cache replay engine (traffic.New
// and Run) against one memcached: gets per CPU-second of this process, for
// bench/cache/run.sh to set next to memcaslap's.
//
// It seeds a records table, warms every key (so every fetch is a hit),
// replays fetches at an open-loop rate for a while, and prints one line of
// key=value figures. CPU is user+system time of this process (getrusage)
// from the start of traffic to the end of Run, the same measure /usr/bin/time
// gives for memcaslap.
//
//	go run ./bench/cache -memcached 127.0.0.1:21990 -dsn 'root@tcp(127.0.0.1:21991)/firedrill'
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/firedrill-dev/firedrill/traffic"
)

func main() {
	var (
		mc       = flag.String("memcached", "", "memcached address (one server)")
		dsn      = flag.String("dsn", "", "database DSN for seeding and warming")
		keys     = flag.Uint64("keys", 160000, "keys (and rows); all warm")
		value    = flag.Int("value", 100, "cache entry size in bytes (format header included)")
		rate     = flag.Float64("rate", 1e6, "operations per second (open loop); above capacity the pacer waits for a free worker")
		dur      = flag.Duration("duration", 10*time.Second, "replay duration")
		inflight = flag.Int("inflight", 16, "max operations in flight (workers)")
		conns    = flag.Int("conns", 16, "connections per server (pool)")
		procs    = flag.Int("processes", 4, "fleet size")
		mux      = flag.Bool("mux", traffic.NewConfig().CacheMux, "gets and sets over the multiplexed meta-protocol connection (the engine's default); -mux=false for the connection pool")
		prof     = flag.String("cpuprofile", "", "write a CPU profile of the traffic window here")
		label    = flag.String("label", "engine", "first field of the output line")
	)
	flag.Parse()
	if err := run(*mc, *dsn, *keys, *value, *rate, *dur, *inflight, *conns, *procs, *mux, *prof, *label); err != nil {
		fmt.Fprintln(os.Stderr, "engine_bench:", err)
		os.Exit(1)
	}
}

const header = 18 // legacy format: signature and fields before the payload

func run(mc, dsn string, keys uint64, value int, rate float64, dur time.Duration, inflight, conns, procs int, mux bool, prof, label string) error {
	if mc == "" || dsn == "" {
		return fmt.Errorf("-memcached and -dsn are required")
	}
	if value < header {
		return fmt.Errorf("-value %d: at least %d", value, header)
	}
	ctx := context.Background()
	table := fmt.Sprintf("bench_records_%d", value)
	sc := traffic.NewSeedConfig()
	sc.DSN, sc.Table, sc.Rows = dsn, table, keys
	sc.PayloadMin, sc.PayloadMax = value-header, value-header
	if _, err := traffic.Seed(ctx, sc); err != nil {
		return err
	}
	cfg := traffic.NewConfig(
		traffic.WithCacheAddrs(mc), traffic.WithDSN(dsn), traffic.WithRate(rate),
		traffic.WithDuration(dur), traffic.WithKeys(keys, keys),
	)
	cfg.AdminCacheAddrs = nil
	cfg.Table = table
	cfg.Warm = int(keys)
	cfg.HotSet = int(keys)
	cfg.TTL = time.Hour
	cfg.MaxInflight = inflight
	cfg.CacheConns = conns
	cfg.Processes = procs
	cfg.CacheMux = mux
	cfg.CacheTimeout = 5 * time.Second
	cfg.HDROut = ""
	e, err := traffic.New(cfg, nil)
	if err != nil {
		return err
	}
	type result struct {
		s   traffic.Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := e.Run(ctx)
		done <- result{s, err}
	}()
	var cpu0 time.Duration
	var t0 time.Time
	select {
	case <-e.Started():
		cpu0, t0 = cpuTime(), time.Now()
	case r := <-done:
		return fmt.Errorf("run ended before traffic started: %v", r.err)
	}
	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	r := <-done
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	if prof != "" {
		pprof.StopCPUProfile()
	}
	if r.err != nil {
		return r.err
	}
	s := r.s
	var errs []string
	var nerr int64
	for c, n := range s.Errors {
		if n > 0 {
			errs = append(errs, fmt.Sprintf("%s:%d", c, n))
			nerr += n
		}
	}
	sort.Strings(errs)
	if len(errs) == 0 {
		errs = []string{"-"}
	}
	if s.Fetches == 0 {
		return fmt.Errorf("no fetches")
	}
	fmt.Printf("%s gets=%d hits=%d misses=%d errors=%d cpu_s=%.2f wall_s=%.2f gets_per_cpu_s=%.0f gets_per_s=%.0f cpus=%.2f late=%d p50_us=%d p99_us=%d mux=%v inflight=%d rate=%.0f error_classes=%s\n",
		label, s.Fetches, s.Hits, s.Misses, nerr, cpu.Seconds(), wall.Seconds(),
		float64(s.Fetches)/cpu.Seconds(), float64(s.Fetches)/wall.Seconds(), cpu.Seconds()/wall.Seconds(),
		s.Late, s.FetchP50.Microseconds(), s.FetchP99.Microseconds(), mux, inflight, rate, strings.Join(errs, ","))
	if s.Misses > s.Fetches/100 {
		return fmt.Errorf("%d misses of %d fetches: keys were not all warm", s.Misses, s.Fetches)
	}
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
