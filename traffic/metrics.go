package traffic

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// MaxProcesses bounds the fleet so per-process counters can be preallocated
// and scale() never allocates on the hot path.
const MaxProcesses = 256

// Kind is a k6 metric type.
type Kind uint8

// Metric kinds, as k6's Counter, Trend and Gauge.
const (
	Counter Kind = iota
	Trend
	Gauge
)

// Metric names the harness reads. Each is pushed at most once per tag set
// per interval.
const (
	MetricFetches   = "cache_fetches"
	MetricHits      = "cache_hits"
	MetricMisses    = "cache_misses"
	MetricDBQueries = "db_queries"
	// MetricDBHotReads counts the database reads of the hot set's records
	// (the HotSet most popular keys), counted when issued as db_queries
	// are. The steady load (writes' refills, spread TTLs) falls on other
	// records, so a protection's effect on a hot-set expiry is this count,
	// free of the steady load's counting noise: one read per hot key is
	// what a protection that works lets through.
	MetricDBHotReads  = "db_hot_reads"
	MetricErrors      = "firedrill_errors"
	MetricLate        = "cache_late"
	MetricCoalesced   = "cache_coalesced"
	MetricFillWaits   = "cache_fill_waits"
	MetricStaleServed = "cache_stale_served"
	MetricLeaseWon    = "cache_lease_won"
	MetricEarly       = "cache_early_refreshes"
	MetricFetchMs     = "cache_fetch_ms"
	MetricDBQueryMs   = "db_query_ms"
	MetricDBInflight  = "db_inflight"
	MetricDBConns     = "db_connections"
	MetricLookups     = "db_lookups"
	MetricLookupMs    = "db_lookup_ms"
	MetricWriteMs     = "db_write_ms"
	MetricTenantWrite = "db_tenant_writes"
	MetricBreakerOpen = "cache_breaker_opens"
	// MetricRetries counts database reads retried by the retry layer
	// (retry.go); MetricRetriesDenied the retries its budget refused.
	MetricRetries       = "db_retries"
	MetricRetriesDenied = "db_retries_denied"
	// MetricRequests counts requests (calls to the cache tier in
	// sequence), MetricTierCalls the tier calls they made (a get, and a set
	// when it missed; skipped calls are not made), and MetricRequestMs is
	// a request's latency from its due time.
	MetricRequests  = "cache_requests"
	MetricTierCalls = "cache_tier_calls"
	MetricRequestMs = "cache_request_ms"
)

// baseMetrics are the metrics the engine itself emits, with their kinds.
var baseMetrics = map[string]Kind{
	MetricFetches: Counter, MetricHits: Counter, MetricMisses: Counter,
	MetricDBQueries: Counter, MetricDBHotReads: Counter, MetricErrors: Counter, MetricLate: Counter,
	MetricLookups: Counter, MetricTenantWrite: Counter, MetricWriteMs: Trend,
	MetricFetchMs: Trend, MetricDBQueryMs: Trend, MetricLookupMs: Trend,
	MetricDBInflight: Gauge, MetricDBConns: Gauge, MetricRetries: Counter,
	MetricRequests: Counter, MetricTierCalls: Counter, MetricRequestMs: Trend,
}

// MetricKinds lists every metric the engine emits with its kind, its
// protections' counters included, so an adapter can register them all up
// front.
func MetricKinds() map[string]Kind {
	out := make(map[string]Kind, len(baseMetrics)+8)
	for k, v := range baseMetrics {
		out[k] = v
	}
	for _, m := range protectionCounters() {
		out[m] = Counter
	}
	return out
}

// protectionCounters are the registered protections' counters, sorted,
// each once.
func protectionCounters() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range registry {
		for _, c := range s.Counters {
			if !seen[c.Metric] {
				seen[c.Metric] = true
				out = append(out, c.Metric)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Sample is one aggregated value for one interval.
type Sample struct {
	Metric string
	Kind   Kind
	Time   time.Time
	Value  float64
	Tags   map[string]string
}

// Sink receives each interval's samples. Push is called from the engine's
// flusher goroutine, never concurrently with itself.
type Sink interface {
	Push(samples []Sample)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func([]Sample)

// Push calls f.
func (f SinkFunc) Push(s []Sample) { f(s) }

var _ Sink = SinkFunc(nil)

// Error classes counted in firedrill_errors (tag class).
const (
	ClassTimeout            = "timeout"
	ClassTooManyConnections = "too_many_connections"
	ClassRefused            = "refused"
	ClassReset              = "reset"
	ClassDecode             = "decode"
	ClassShed               = "shed"
	ClassBreakerOpen        = "breaker_open"
	// ClassDeadline: answered, but later than the caller's deadline
	// (Config.Deadline) after the operation came due; not served.
	ClassDeadline = "deadline"
	ClassOther    = "other"
)

var classes = [...]string{ClassTimeout, ClassTooManyConnections, ClassRefused, ClassReset, ClassDecode, ClassShed, ClassBreakerOpen, ClassDeadline, ClassOther}

func classIndex(c string) int {
	for i, x := range classes {
		if x == c {
			return i
		}
	}
	return len(classes) - 1
}

// per-process scalar counters of the engine itself; the protections'
// counters follow them, by name (stats.named).
const (
	cDBQueries = iota
	cDBHotReads
	cLookups
	cTenantWrites
	cRequests
	cTierCalls
	numScalar
)

var scalarNames = [numScalar]string{MetricDBQueries, MetricDBHotReads, MetricLookups, MetricTenantWrite, MetricRequests, MetricTierCalls}

// Operation tags of firedrill_errors (tag op): which kind of operation
// failed, so a drill can hold reads to a budget while a fault's own victims
// (lookups cut by a statement limit, say) fail as designed.
const (
	OpFetch   = "fetch"
	OpWrite   = "write"
	OpLookup  = "lookup"
	OpRequest = "request"
)

var opNames = [numOpKinds]string{opFetch: OpFetch, opMulti: OpFetch, opWrite: OpWrite, opTenantWrite: OpWrite, opLookup: OpLookup, opRequest: OpRequest}

// fetch counters are per process x server x format.
const (
	fFetches = iota
	fHits
	fMisses
	numFetch
)

var fetchNames = [numFetch]string{MetricFetches, MetricHits, MetricMisses}

type procStats struct {
	scalar [numScalar]atomic.Int64
	named  []atomic.Int64 // the protections' counters, by stats.names
	fetch  []atomic.Int64 // [server][format(0 legacy,1 current)][numFetch]
}

// histShards spreads the workers' ledger records over this many locks.
const histShards = 8

// histKind names the latency histograms, each pushed as its trend.
type histKind uint8

const (
	hFetch histKind = iota
	hDB
	hLookup
	hWrite
	hRequest
	numHists
)

var histMetrics = [numHists]string{hFetch: MetricFetchMs, hDB: MetricDBQueryMs, hLookup: MetricLookupMs, hWrite: MetricWriteMs, hRequest: MetricRequestMs}

// newHist covers 1 µs to 60 s at 3 significant digits.
func newHist() *hdr.Histogram { return hdr.New(1, 60_000_000, 3) }

type stats struct {
	servers int
	procs   [MaxProcesses]procStats
	errs    [numOpKinds][len(classes)]atomic.Int64
	late    atomic.Int64
	ledger  *ledger

	// firstErr is the first error message of each class, for the
	// summary: "other" says nothing of what went wrong
	firstErr [len(classes)]atomic.Pointer[string]

	// fetches answered (served or failed) and the sum of their latencies,
	// for an autoscaler's view of latency (Engine.FetchLatency)
	fetchesDone, fetchSumUs atomic.Int64

	dbInflight     atomic.Int64
	dbInflightPeak atomic.Int64
	// the retry layer's counter (retry.go), drained by collect
	retries atomic.Int64
	// names are the protections' counters; index maps a name to its slot
	names []string
	index map[string]int

	// owned by the flusher; the totals maps are also read by Totals, under totMu
	totMu   sync.Mutex
	iv, tot [numHists]*hdr.Histogram // this interval's, and the run's

	totals      map[string]float64
	errTotals   map[string]float64 // by class
	opErrTotals map[string]float64 // by op tag
}

func newStats(servers int) *stats {
	s := &stats{servers: servers, totals: map[string]float64{}, errTotals: map[string]float64{}, opErrTotals: map[string]float64{}, ledger: newLedger(),
		names: protectionCounters(), index: map[string]int{}}
	for i, n := range s.names {
		s.index[n] = i
	}
	for i := range s.procs {
		s.procs[i].fetch = make([]atomic.Int64, servers*2*numFetch)
		s.procs[i].named = make([]atomic.Int64, len(s.names))
	}
	for k := range s.iv {
		s.iv[k], s.tot[k] = newHist(), newHist()
	}
	return s
}

func fmtIndex(current bool) int {
	if current {
		return 1
	}
	return 0
}

func (s *stats) fetch(proc, server int, current bool, which int) {
	s.procs[proc].fetch[(server*2+fmtIndex(current))*numFetch+which].Add(1)
}

func (s *stats) add(proc, which int, n int64) { s.procs[proc].scalar[which].Add(n) }

// addNamed adds n to a protection's counter metric; a name no protection
// registered is a programming error.
func (s *stats) addNamed(proc int, metric string, n int64) {
	i, ok := s.index[metric]
	if !ok {
		panic("traffic: counter " + metric + " is not a registered protection's")
	}
	s.procs[proc].named[i].Add(n)
}

func (s *stats) errorClass(op opKind, class string) { s.errs[op][classIndex(class)].Add(1) }

// firstErrors are the first messages by class.
func (s *stats) firstErrors() map[string]string {
	out := map[string]string{}
	for i := range s.firstErr {
		if m := s.firstErr[i].Load(); m != nil {
			out[classes[i]] = *m
		}
	}
	return out
}

// firstError keeps err's message when it is the first of its class.
func (s *stats) firstError(class string, err error) {
	p := &s.firstErr[classIndex(class)]
	if p.Load() == nil {
		msg := err.Error()
		p.CompareAndSwap(nil, &msg)
	}
}

// record adds d, a latency of the operation due at due, to the
// histograms kinds.
func (s *stats) record(shard int, due time.Time, d time.Duration, kinds ...histKind) {
	s.ledger.latency(shard, due, d, kinds...)
}

func (s *stats) dbEnter() {
	n := s.dbInflight.Add(1)
	for {
		p := s.dbInflightPeak.Load()
		if n <= p || s.dbInflightPeak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (s *stats) dbLeave() { s.dbInflight.Add(-1) }

// collect drains the counters into samples stamped t. procTags and
// serverTags name the tag values; dbConns is the open connection count.
func (s *stats) collect(t time.Time, serverNames []string, nprocs int, dbConns int64) []Sample {
	s.totMu.Lock()
	defer s.totMu.Unlock()
	var out []Sample
	for p := 0; p < MaxProcesses; p++ {
		ps := &s.procs[p]
		var ptag string
		for i := 0; i < numScalar; i++ {
			if v := ps.scalar[i].Swap(0); v != 0 {
				if ptag == "" {
					ptag = strconv.Itoa(p)
				}
				out = append(out, Sample{Metric: scalarNames[i], Kind: Counter, Time: t, Value: float64(v), Tags: map[string]string{"process": ptag}})
				s.totals[scalarNames[i]] += float64(v)
			}
		}
		for i := range ps.named {
			if v := ps.named[i].Swap(0); v != 0 {
				if ptag == "" {
					ptag = strconv.Itoa(p)
				}
				out = append(out, Sample{Metric: s.names[i], Kind: Counter, Time: t, Value: float64(v), Tags: map[string]string{"process": ptag}})
				s.totals[s.names[i]] += float64(v)
			}
		}
		for srv := 0; srv < s.servers; srv++ {
			for f := 0; f < 2; f++ {
				for w := 0; w < numFetch; w++ {
					if v := ps.fetch[(srv*2+f)*numFetch+w].Swap(0); v != 0 {
						if ptag == "" {
							ptag = strconv.Itoa(p)
						}
						fm := "legacy"
						if f == 1 {
							fm = "current"
						}
						out = append(out, Sample{Metric: fetchNames[w], Kind: Counter, Time: t, Value: float64(v),
							Tags: map[string]string{"process": ptag, "server": serverNames[srv], "format": fm}})
						s.totals[fetchNames[w]] += float64(v)
					}
				}
			}
		}
	}
	for _, tag := range []string{OpFetch, OpWrite, OpLookup, OpRequest} {
		for i, c := range classes {
			var v int64
			for op := range s.errs {
				if opNames[op] == tag {
					v += s.errs[op][i].Swap(0)
				}
			}
			if v != 0 {
				out = append(out, Sample{Metric: MetricErrors, Kind: Counter, Time: t, Value: float64(v), Tags: map[string]string{"class": c, "op": tag}})
				s.errTotals[c] += float64(v)
				s.opErrTotals[tag] += float64(v)
			}
		}
	}
	if v := s.late.Swap(0); v != 0 {
		out = append(out, Sample{Metric: MetricLate, Kind: Counter, Time: t, Value: float64(v)})
		s.totals[MetricLate] += float64(v)
	}
	out = s.appendRetrySamples(out, t)
	s.ledger.fold(func(k histKind, v int64) { _ = s.iv[k].RecordValue(v) })
	// One Trend sample per interval and histogram: the interval's p99 (see
	// package doc).
	for k, iv := range s.iv {
		if iv.TotalCount() > 0 {
			out = append(out, Sample{Metric: histMetrics[k], Kind: Trend, Time: t, Value: float64(iv.ValueAtQuantile(99)) / 1000})
		}
		s.tot[k].Merge(iv)
	}
	for _, iv := range s.iv {
		iv.Reset()
	}
	peak := s.dbInflightPeak.Swap(s.dbInflight.Load())
	out = append(out, Sample{Metric: MetricDBInflight, Kind: Gauge, Time: t, Value: float64(peak)})
	out = append(out, Sample{Metric: MetricDBConns, Kind: Gauge, Time: t, Value: float64(dbConns)})
	return out
}

// counterSample is an untagged counter sample outside the per-process
// counters, added to the totals.
func (s *stats) counterSample(t time.Time, metric string, v float64) Sample {
	s.totMu.Lock()
	s.totals[metric] += v
	s.totMu.Unlock()
	return Sample{Metric: metric, Kind: Counter, Time: t, Value: v}
}

// Totals are the counts a replay has pushed so far: counters by metric
// name, errors by class and by operation.
type Totals struct {
	Counters, Errors, OpErrors map[string]int64
}

func (s *stats) snapshot() Totals {
	s.totMu.Lock()
	defer s.totMu.Unlock()
	cp := func(m map[string]float64) map[string]int64 {
		out := make(map[string]int64, len(m))
		for k, v := range m {
			out[k] = int64(v)
		}
		return out
	}
	return Totals{Counters: cp(s.totals), Errors: cp(s.errTotals), OpErrors: cp(s.opErrTotals)}
}
