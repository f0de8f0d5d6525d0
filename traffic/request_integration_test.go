//go:build integration

package traffic_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/traffic"
)

// mcStat reads one of memcached's own counters (stats) at addr.
func mcStat(t *testing.T, addr, name string) int64 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "stats\r\n"); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 1 && f[0] == "END" {
			break
		}
		if len(f) == 3 && f[0] == "STAT" && f[1] == name {
			v, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("memcached at %s has no stat %s (%v)", addr, name, sc.Err())
	return 0
}

// ledgerTotals adds the ledger file's counts over every bucket.
func ledgerTotals(t *testing.T, path string) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var l traffic.LedgerLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		for k, v := range l.Counts {
			out[k] += v
		}
	}
	return out
}

// requestConfig replays requests only, against one of the environment's
// memcached servers as the tier: the tier's keys have a prefix of their
// own, and no fetch reads the cache, so that server's gets are the tier's.
func requestConfig(t *testing.T, tier string, calls int) traffic.Config {
	c := baseConfig(traffic.WithRate(100), traffic.WithDuration(3*time.Second))
	c.Warm = 0
	c.TierAddrs = []string{tier}
	c.RequestFraction = 1
	c.RequestCalls = calls
	c.HDROut = filepath.Join(t.TempDir(), "ledger.ndjson")
	return c
}

// A request calls the tier requestCalls times, one get each (and a set on
// a miss), and its latency is a histogram of its own: memcached's own
// cmd_get is requestCalls x requests.
func TestRequestsCallTheTierInSequence(t *testing.T) {
	flushAll(t)
	tier, direct := env.cache[1], env.direct[1]
	c := requestConfig(t, tier, 5)
	getsBefore, setsBefore := mcStat(t, direct, "cmd_get"), mcStat(t, direct, "cmd_set")
	e, err := traffic.New(c, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	gets, sets := mcStat(t, direct, "cmd_get")-getsBefore, mcStat(t, direct, "cmd_set")-setsBefore
	t.Logf("requests %d, tier calls %d, p50 %v, p99 %v; the tier's memcached: %d gets, %d sets; errors %v",
		s.Requests, s.TierCalls, s.RequestP50, s.RequestP99, gets, sets, s.Errors)
	if s.Requests < 280 || s.Requests > 300 {
		t.Errorf("requests = %d, want about 100/s x 3 s", s.Requests)
	}
	if s.TierCalls != 5*s.Requests {
		t.Errorf("tier calls = %d for %d requests, want 5 each", s.TierCalls, s.Requests)
	}
	if d := gets - 5*s.Requests; d < -5 || d > 5 {
		t.Errorf("the tier's memcached counted %d gets for %d requests, want 5 x requests = %d (within 5)", gets, s.Requests, 5*s.Requests)
	}
	// a Zipf over 20,000 keys: the first calls miss and set, repeats hit
	if sets == 0 || sets >= gets {
		t.Errorf("the tier's memcached counted %d sets for %d gets: want a set per miss, and hits", sets, gets)
	}
	if s.Fetches != 0 || s.DBQueries != 0 {
		t.Errorf("requests read the cache (%d fetches) or the database (%d queries)", s.Fetches, s.DBQueries)
	}
	if len(s.Errors) != 0 {
		t.Errorf("errors: %v (first: %v)", s.Errors, s.FirstErrors)
	}
	if s.RequestP50 <= 0 || s.RequestP50 > 500*time.Millisecond || s.RequestP99 < s.RequestP50 {
		t.Errorf("request p50 %v, p99 %v: want five local round trips recorded", s.RequestP50, s.RequestP99)
	}
	l := ledgerTotals(t, c.HDROut)
	if l["request.offered"] != s.Operations || l["request.served"] != s.Requests || l["request.count"] != s.Requests || l["fetch.offered"] != 0 {
		t.Errorf("ledger: %v; want every one of %d operations a request, %d served, each with a latency", l, s.Operations, s.Requests)
	}
}

// hangingTier is a tier server that accepts connections and answers
// nothing (a blackholed tier: every call waits its timeout) until heal,
// which closes the hung connections and forwards new ones to to.
type hangingTier struct {
	ln     net.Listener
	to     string
	mu     sync.Mutex
	healed bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newHangingTier(t *testing.T, to string) *hangingTier {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangingTier{ln: ln, to: to}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			healed := h.healed
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			if healed {
				h.wg.Add(1)
				go func() {
					defer h.wg.Done()
					h.forward(c)
				}()
			}
		}
	}()
	t.Cleanup(h.close)
	return h
}

func (h *hangingTier) forward(c net.Conn) {
	u, err := net.Dial("tcp", h.to)
	if err != nil {
		c.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	<-done
}

func (h *hangingTier) heal() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.healed = true
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

func (h *hangingTier) close() {
	h.ln.Close()
	h.heal()
	h.wg.Wait()
}

// Incident 004 and its flag: against a tier that answers nothing, every
// call of a request waits the round-trip timeout; with the flag, the first
// timeout turns it off, requests skip the tier and stay fast, and once the
// tier answers again the probe turns it back on and requests call it.
func TestTierFlagKeepsRequestsFastWhileTheTierHangs(t *testing.T) {
	run := func(flag bool) (traffic.Summary, int64) {
		h := newHangingTier(t, env.direct[1])
		c := requestConfig(t, h.ln.Addr().String(), 5)
		c.Duration = 4 * time.Second
		c.Rate = 20
		c.TierTimeout = 200 * time.Millisecond
		c.Deadline = 0
		c.Protections = protections(t, map[string]any{"tierFlag": flag, "tierFlagProbe": "100ms"})
		before := mcStat(t, env.direct[1], "cmd_get")
		_, _, s := drill(t, c, 2*time.Second, func(*traffic.Engine) { h.heal() })
		gets := mcStat(t, env.direct[1], "cmd_get") - before
		t.Logf("tierFlag %v: requests %d, tier calls %d, p50 %v, p99 %v, flag offs %d, skipped %d, errors %v; the tier's memcached: %d gets",
			flag, s.Requests, s.TierCalls, s.RequestP50, s.RequestP99, s.Protections["tierFlagOffs"], s.Protections["tierSkipped"], s.Errors, gets)
		return s, gets
	}
	off, _ := run(false)
	// 5 calls x 200 ms while it hangs: half the run's requests take 1 s
	if off.RequestP99 < 900*time.Millisecond || off.Errors[traffic.ClassTimeout] < 50 || off.Protections["tierFlagOffs"] != 0 {
		t.Errorf("no flag: p99 %v, timeouts %d, flag offs %d; want requests as slow as 5 timeouts", off.RequestP99, off.Errors[traffic.ClassTimeout], off.Protections["tierFlagOffs"])
	}
	on, gets := run(true)
	if on.Protections["tierFlagOffs"] < 1 || on.Protections["tierSkipped"] < 100 {
		t.Errorf("flag: %d offs, %d calls skipped; want it off while the tier hangs", on.Protections["tierFlagOffs"], on.Protections["tierSkipped"])
	}
	// a few requests under way when the flag went off wait out their call
	if on.Errors[traffic.ClassTimeout] > 20 || on.RequestP50 > 50*time.Millisecond {
		t.Errorf("flag: %d timeouts, p50 %v; want the tier skipped after the first", on.Errors[traffic.ClassTimeout], on.RequestP50)
	}
	// healed at 2 s, probed every 100 ms: the second half calls the tier
	if on.TierCalls < 100 || gets < on.TierCalls-20 {
		t.Errorf("flag: %d tier calls, the tier's memcached %d gets; want it on again after the tier healed", on.TierCalls, gets)
	}
	if on.Requests < 70 {
		t.Errorf("flag: %d requests, want about 20/s x 4 s", on.Requests)
	}
}
