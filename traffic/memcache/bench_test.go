package memcache

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/zipf"
)

// Benchmarks for bench/cache/run.sh. They need a memcached at
// FIREDRILL_BENCH_MEMCACHED (loopback) and skip without one. Each reports
// the generator's own CPU (getrusage, user+sys) so gets per CPU-second can
// be compared with memcaslap's in the same run.

const (
	benchKeys      = 160000 // memcaslap: concurrency 16 x window 10k
	benchValueSize = 100
	benchConc      = 16
)

func benchClient(b *testing.B) *Client {
	addr := os.Getenv("FIREDRILL_BENCH_MEMCACHED")
	if addr == "" {
		b.Skip("FIREDRILL_BENCH_MEMCACHED not set")
	}
	c, err := New([]string{addr}, WithMaxConns(benchConc*2), WithTimeout(5*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func benchKey(dst []byte, id uint64) []byte {
	dst = append(dst[:0], "IDC:8:blob:Record:1a2b3c4d:"...)
	return strconv.AppendUint(dst, id, 10)
}

var preloaded sync.Once

// preload sets every key once per benchmark process (go test calls each
// benchmark several times while it sizes b.N).
func preload(b *testing.B, c *Client) {
	preloaded.Do(func() { doPreload(b, c) })
}

func doPreload(b *testing.B, c *Client) {
	val := []byte(strings.Repeat("v", benchValueSize))
	var buf []byte
	for id := uint64(0); id < benchKeys; id++ {
		buf = benchKey(buf, id)
		if err := c.Set(context.Background(), string(buf), val, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	return -1
}

// BenchmarkGetSet is the memcaslap-shaped load: 16 concurrent callers, one
// operation at a time each (no pipelining), 9 gets to 1 set, 100-byte
// values, Zipf-distributed keys over the same key count.
func BenchmarkGetSet(b *testing.B) {
	c := benchClient(b)
	defer c.Close()
	preload(b, c)
	s, _ := zipf.New(benchKeys, 0.99)
	val := []byte(strings.Repeat("v", benchValueSize))
	var gets, next atomic.Int64
	ctx := context.Background()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for g := 0; g < benchConc; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(1, uint64(g)))
			var buf []byte
			for next.Add(1) <= int64(b.N) {
				buf = benchKey(buf, s.Next(r))
				if r.IntN(10) == 0 {
					if err := c.Set(ctx, string(buf), val, 0); err != nil {
						b.Error(err)
						return
					}
					continue
				}
				if _, err := c.Get(ctx, string(buf)); err != nil && err != ErrCacheMiss {
					b.Error(err)
					return
				}
				gets.Add(1)
			}
		}(g)
	}
	wg.Wait()
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	b.ReportMetric(float64(gets.Load())/cpu.Seconds(), "gets/cpu-s")
	b.ReportMetric(float64(gets.Load())/wall.Seconds(), "gets/s")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpus")
}

// BenchmarkGetSetMux is the same load with the 16 callers multiplexed over
// one connection by Mux (syscalls shared between concurrent callers), with
// a per-request timeout as the engine dials it (500 ms, the replay's
// default cacheTimeout), so the expirer's cost is in the figure.
func BenchmarkGetSetMux(b *testing.B) {
	c := benchClient(b)
	preload(b, c)
	c.Close()
	m, err := dialMux(context.Background(), os.Getenv("FIREDRILL_BENCH_MEMCACHED"), 500*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	s, _ := zipf.New(benchKeys, 0.99)
	val := []byte(strings.Repeat("v", benchValueSize))
	var gets, next atomic.Int64
	ctx := context.Background()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for g := 0; g < benchConc; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(1, uint64(g)))
			req := NewMuxReq()
			var buf []byte
			for next.Add(1) <= int64(b.N) {
				buf = benchKey(buf, s.Next(r))
				req.Key = string(buf)
				req.Set = r.IntN(10) == 0
				if req.Set {
					req.Value, req.TTL = val, 0
				}
				if err := m.Do(ctx, req); err != nil {
					b.Error(err)
					return
				}
				if !req.Set {
					gets.Add(1)
				} else {
					req.Value = nil
				}
			}
		}(g)
	}
	wg.Wait()
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	b.ReportMetric(float64(gets.Load())/cpu.Seconds(), "gets/cpu-s")
	b.ReportMetric(float64(gets.Load())/wall.Seconds(), "gets/s")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpus")
}

// benchMulti runs batched gets of `batch` keys with `conc` callers, keys
// drawn from a Zipf over n ids, and reports keys per second.
func benchMulti(b *testing.B, n uint64, batch, conc int, meta bool) {
	c := benchClient(b)
	defer c.Close()
	if n == benchKeys {
		preload(b, c)
	}
	s, _ := zipf.New(n, 0.99)
	var keysDone, hits, next atomic.Int64
	ctx := context.Background()
	rss0 := rssKB()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(2, uint64(g)))
			keys := make([]string, batch)
			var buf []byte
			for next.Add(1) <= int64(b.N) {
				for i := range keys {
					buf = benchKey(buf, s.Next(r))
					keys[i] = string(buf)
				}
				var err error
				if meta {
					err = c.MetaGetMulti(ctx, keys, func(string, []byte) { hits.Add(1) })
				} else {
					err = c.GetMulti(ctx, keys, func(string, []byte) { hits.Add(1) })
				}
				if err != nil {
					b.Error(err)
					return
				}
				keysDone.Add(int64(batch))
			}
		}(g)
	}
	wg.Wait()
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	b.ReportMetric(float64(keysDone.Load())/wall.Seconds(), "keys/s")
	b.ReportMetric(float64(keysDone.Load())/cpu.Seconds(), "keys/cpu-s")
	b.ReportMetric(float64(hits.Load())/float64(max(keysDone.Load(), 1)), "hit-ratio")
	b.ReportMetric(float64(rss0), "rss-start-kB")
	b.ReportMetric(float64(rssKB()), "rss-end-kB")
}

// BenchmarkMultiGet100 is fetch_multi's path: one "get k1..k100" per call.
func BenchmarkMultiGet100(b *testing.B) { benchMulti(b, benchKeys, 100, 4, false) }

// BenchmarkMetaMultiGet100 pipelines 100 "mg k v" per round trip.
func BenchmarkMetaMultiGet100(b *testing.B) { benchMulti(b, benchKeys, 100, 4, true) }

// BenchmarkMultiGet100Keyspace5e9 draws from a 5,000,000,000-record
// keyspace (mostly misses): generator memory must not grow with it.
func BenchmarkMultiGet100Keyspace5e9(b *testing.B) {
	benchMulti(b, 5_000_000_000, 100, 4, false)
}
