package traffic

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	fdb "github.com/firedrill-dev/firedrill/faults/database"
)

// Outcome is how one offered operation ended. Every operation the pacer
// makes due ends as exactly one outcome, counted in the ledger bucket of
// its due time, so the outcomes of a phase add up to what it offered.
type Outcome uint8

// The outcomes of an operation.
const (
	// Served: answered fresh, from the cache or the database.
	Served Outcome = iota
	// Stale: answered with an expired entry (stale-while-revalidate).
	Stale
	// Shed: refused by a protection (the database concurrency limit)
	// instead of queueing; not served.
	Shed
	// Failed: an error lost the answer (its class is counted beside it). A
	// cache error followed by a good database read is not a failure.
	Failed
	// Unsent: came due but never started before the replay's deadline,
	// because every serving slot was busy.
	Unsent
	// Unfinished: cut off when the replay was stopped (k6 ended the test).
	Unfinished
	numOutcomes
)

// OutcomeNames are the ledger's names of the outcomes, in Outcome order.
var OutcomeNames = [numOutcomes]string{"served", "stale", "shed", "failed", "unsent", "unfinished"}

// String returns the outcome's ledger name.
func (o Outcome) String() string { return OutcomeNames[o] }

// BucketSpan is the ledger's resolution: operations are grouped by the
// 100 ms interval (of wall-clock time) their due time falls in, so a phase
// boundary is placed within 100 ms.
const BucketSpan = 100 * time.Millisecond

// Ledger op names: what kind of operation a count or latency belongs to. A
// fetch_multi is one fetch operation; tenant writes are writes.
var ledgerOps = [...]string{OpFetch, OpWrite, OpLookup, OpRequest}

const numLedgerOps = len(ledgerOps)

func ledgerOp(k opKind) int {
	switch k {
	case opWrite, opTenantWrite:
		return 1
	case opLookup:
		return 2
	case opRequest:
		return 3
	}
	return 0
}

// HistNames are the ledger's latency histograms: fetch (from due time to
// answer, per operation), db (each database query), write, lookup and
// request (from due time, per operation).
var HistNames = [numHists]string{hFetch: "fetch", hDB: "db", hLookup: "lookup", hWrite: "write", hRequest: "request"}

// tally is what the workers of one shard recorded for one bucket since the
// flusher last took it: raw latencies (folded into histograms by the
// flusher, off the hot path) and counts.
type tally struct {
	vals    [numHists][]uint32 // µs
	sum     [numHists]int64    // µs, so a window's mean needs no histogram
	offered [numLedgerOps]int64
	late    [numLedgerOps]int64
	out     [numLedgerOps][numOutcomes]int64
	failed  [numLedgerOps][len(classes)]int64
}

func (t *tally) reset() {
	for k := range t.vals {
		t.vals[k] = t.vals[k][:0]
	}
	t.sum = [numHists]int64{}
	t.offered, t.late = [numLedgerOps]int64{}, [numLedgerOps]int64{}
	t.out = [numLedgerOps][numOutcomes]int64{}
	t.failed = [numLedgerOps][len(classes)]int64{}
}

type ledgerShard struct {
	mu   sync.Mutex
	m    map[int64]*tally
	free []*tally
}

func (s *ledgerShard) at(key int64) *tally {
	t := s.m[key]
	if t == nil {
		if n := len(s.free); n > 0 {
			t, s.free = s.free[n-1], s.free[:n-1]
		} else {
			t = &tally{}
		}
		s.m[key] = t
	}
	return t
}

// ledgerShards: one per worker shard, plus one for the pacer.
const ledgerShards = histShards + 1

// ledger records every operation by the bucket of its due time.
type ledger struct {
	shards [ledgerShards]ledgerShard
	// owned by the flusher: buckets folded since the last write
	agg   map[int64]*aggBucket
	hpool []*hdr.Histogram
}

type aggBucket struct {
	h      [numHists]*hdr.Histogram
	counts map[string]int64
}

func newLedger() *ledger {
	l := &ledger{agg: map[int64]*aggBucket{}}
	for i := range l.shards {
		l.shards[i].m = map[int64]*tally{}
	}
	return l
}

func bucketKey(due time.Time) int64 { return due.UnixMilli() / BucketSpan.Milliseconds() }

func (l *ledger) shard(i int) *ledgerShard { return &l.shards[i%histShards] }

// offer counts an operation made due (the pacer's own shard).
func (l *ledger) offer(due time.Time, k opKind) {
	s := &l.shards[histShards]
	s.mu.Lock()
	s.at(bucketKey(due)).offered[ledgerOp(k)]++
	s.mu.Unlock()
}

// unsent counts operations made due that never started (the pacer's shard).
func (l *ledger) unsent(due time.Time, k opKind) {
	s := &l.shards[histShards]
	s.mu.Lock()
	t := s.at(bucketKey(due))
	t.offered[ledgerOp(k)]++
	t.out[ledgerOp(k)][Unsent]++
	s.mu.Unlock()
}

// latency records d for the operation due at due in the histograms kinds.
func (l *ledger) latency(shard int, due time.Time, d time.Duration, kinds ...histKind) {
	v := uint32(min(max(d.Microseconds(), 1), 60_000_000))
	s := l.shard(shard)
	s.mu.Lock()
	t := s.at(bucketKey(due))
	for _, k := range kinds {
		t.vals[k] = append(t.vals[k], v)
		t.sum[k] += int64(v)
	}
	s.mu.Unlock()
}

// finish records how the operation due at due ended; class is the error
// class of a failure (ignored otherwise), late whether it started late.
func (l *ledger) finish(shard int, due time.Time, k opKind, o Outcome, class int, late bool) {
	op := ledgerOp(k)
	s := l.shard(shard)
	s.mu.Lock()
	t := s.at(bucketKey(due))
	t.out[op][o]++
	if o == Failed {
		t.failed[op][class]++
	}
	if late {
		t.late[op]++
	}
	s.mu.Unlock()
}

// fold takes every shard's tallies into the flusher's buckets, and hands
// each raw latency to also (the interval histograms behind the k6 trends).
func (l *ledger) fold(also func(k histKind, v int64)) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		m := s.m
		if len(m) == 0 {
			s.mu.Unlock()
			continue
		}
		s.m = make(map[int64]*tally, len(m))
		s.mu.Unlock()
		for key, t := range m {
			a := l.agg[key]
			if a == nil {
				a = &aggBucket{counts: map[string]int64{}}
				l.agg[key] = a
			}
			for k, vs := range t.vals {
				if len(vs) == 0 {
					continue
				}
				a.counts[HistNames[k]+".count"] += int64(len(vs))
				a.counts[HistNames[k]+".sum_us"] += t.sum[k]
				if a.h[k] == nil {
					a.h[k] = l.hist()
				}
				for _, v := range vs {
					_ = a.h[k].RecordValue(int64(v))
					if also != nil {
						also(histKind(k), int64(v))
					}
				}
			}
			for op, name := range ledgerOps {
				add := func(key string, v int64) {
					if v != 0 {
						a.counts[key] += v
					}
				}
				add(name+".offered", t.offered[op])
				add(name+".late", t.late[op])
				for o, on := range OutcomeNames {
					add(name+"."+on, t.out[op][o])
				}
				for c, cn := range classes {
					add(name+".failed."+cn, t.failed[op][c])
				}
			}
			t.reset()
			s.mu.Lock()
			s.free = append(s.free, t)
			s.mu.Unlock()
		}
	}
}

func (l *ledger) hist() *hdr.Histogram {
	if n := len(l.hpool); n > 0 {
		h := l.hpool[n-1]
		l.hpool = l.hpool[:n-1]
		return h
	}
	return newHist()
}

// LedgerLine is one line of the ledger file (FIREDRILL_HDR_OUT): for the
// 100 ms bucket of due times starting at T (unix seconds), either one
// latency histogram (Metric, Unit, Encoded: hdrhistogram-go's V2
// compressed encoding, base64) or the operation counts (Counts: keys
// "<op>.offered", "<op>.<outcome>", "<op>.failed.<class>", "<op>.late",
// and per histogram "<hist>.count" and "<hist>.sum_us", its latencies'
// number and sum).
// A bucket may appear on several lines (operations finishing in different
// seconds, several generators): readers add counts and merge histograms.
type LedgerLine struct {
	T       float64          `json:"t"`
	Span    float64          `json:"span"`
	Metric  string           `json:"metric,omitempty"`
	Unit    string           `json:"unit,omitempty"`
	Encoded string           `json:"encoded,omitempty"`
	Counts  map[string]int64 `json:"counts,omitempty"`
}

// write appends every folded bucket to w and forgets them.
func (l *ledger) write(w *ledgerWriter) error {
	var first error
	for key, a := range l.agg {
		t := float64(key*BucketSpan.Milliseconds()) / 1000
		for k, h := range a.h {
			if h == nil {
				continue
			}
			if err := w.hist(t, HistNames[k], h); err != nil && first == nil {
				first = err
			}
			h.Reset()
			l.hpool = append(l.hpool, h)
		}
		if len(a.counts) > 0 {
			if err := w.line(LedgerLine{T: t, Span: BucketSpan.Seconds(), Counts: a.counts}); err != nil && first == nil {
				first = err
			}
		}
		delete(l.agg, key)
	}
	return first
}

// ledgerWriter appends ledger lines to a file. Each line is one write
// call, so several generators appending to one file (O_APPEND) never
// interleave lines. A nil writer writes nothing.
type ledgerWriter struct {
	f *os.File
}

func openLedger(path string) (*ledgerWriter, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open ledger output: %w", err)
	}
	return &ledgerWriter{f: f}, nil
}

func (w *ledgerWriter) hist(t float64, metric string, h *hdr.Histogram) error {
	if w == nil || h.TotalCount() == 0 {
		return nil
	}
	enc, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return fmt.Errorf("encode hdr: %w", err)
	}
	return w.line(LedgerLine{T: t, Span: BucketSpan.Seconds(), Metric: metric, Unit: "us", Encoded: string(enc)})
}

func (w *ledgerWriter) line(l LedgerLine) error {
	if w == nil {
		return nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = w.f.Write(append(b, '\n'))
	return err
}

func (w *ledgerWriter) close() error {
	if w == nil {
		return nil
	}
	return w.f.Close()
}

// tenantTally is one tenant's writes over a replay: sent to the database,
// and acknowledged by it. A write that timed out may still have
// committed, so the rows' rise in the database lies between the two.
type tenantTally struct{ sent, acked atomic.Int64 }

// TenantCountKey is the ledger count of a tenant schema's writes, what
// "sent" or "acked": "tenant/<schema>/<what>". The replay writes them once,
// at its end; the harness compares their sums with the database.
func TenantCountKey(schema, what string) string { return "tenant/" + schema + "/" + what }

// writeTenantTally appends each tenant's tally that saw a write to w.
func (e *Engine) writeTenantTally(w *ledgerWriter, now time.Time) error {
	counts := map[string]int64{}
	for i := range e.tenantTally {
		t := &e.tenantTally[i]
		if n := t.sent.Load(); n > 0 {
			schema := fdb.TenantSchema(e.cfg.TenantPrefix, i)
			counts[TenantCountKey(schema, "sent")] = n
			counts[TenantCountKey(schema, "acked")] = t.acked.Load()
		}
	}
	if len(counts) == 0 {
		return nil
	}
	t := float64(now.UnixMilli()/BucketSpan.Milliseconds()*BucketSpan.Milliseconds()) / 1000
	return w.line(LedgerLine{T: t, Span: BucketSpan.Seconds(), Counts: counts})
}
