package traffic

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// readLedger sums a ledger file's counts and merges its histograms per
// bucket start.
func readLedger(t *testing.T, path string) (map[float64]map[string]int64, map[float64]map[string]*hdr.Histogram) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[float64]map[string]int64{}
	hists := map[float64]map[string]*hdr.Histogram{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var l LedgerLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("bad ledger line %s: %v", sc.Text(), err)
		}
		if l.Span != BucketSpan.Seconds() {
			t.Errorf("span %v, want %v", l.Span, BucketSpan.Seconds())
		}
		if l.Counts != nil {
			if counts[l.T] == nil {
				counts[l.T] = map[string]int64{}
			}
			for k, v := range l.Counts {
				counts[l.T][k] += v
			}
			continue
		}
		h, err := hdr.Decode([]byte(l.Encoded))
		if err != nil {
			t.Fatal(err)
		}
		if hists[l.T] == nil {
			hists[l.T] = map[string]*hdr.Histogram{}
		}
		if hists[l.T][l.Metric] == nil {
			hists[l.T][l.Metric] = h
		} else {
			hists[l.T][l.Metric].Merge(h)
		}
	}
	return counts, hists
}

// Latencies and outcomes belong to the bucket of the operation's due time,
// not to the time it finished or was written, and every offered operation
// ends as exactly one outcome.
func TestLedgerAttributesByDueTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.ndjson")
	w, err := openLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	s := newStats(1)
	t0 := time.Unix(1_700_000_000, 0) // a bucket boundary
	early, later := t0.Add(20*time.Millisecond), t0.Add(250*time.Millisecond)
	s.ledger.offer(early, opFetch)
	s.ledger.offer(early, opFetch)
	s.ledger.offer(early, opTenantWrite)
	// the slow fetch due early finishes two seconds later, after a flush
	s.record(3, early, 2*time.Second, hFetch)
	s.ledger.finish(3, early, opFetch, Failed, classIndex(ClassTimeout), true)
	s.collect(time.Now(), []string{"a"}, 1, 0)
	if err := s.ledger.write(w); err != nil {
		t.Fatal(err)
	}
	s.record(0, early, 5*time.Millisecond, hFetch)
	s.ledger.finish(0, early, opFetch, Served, 0, false)
	s.record(1, early, 9*time.Millisecond, hWrite)
	s.ledger.finish(1, early, opTenantWrite, Shed, classIndex(ClassShed), false)
	s.ledger.unsent(later, opLookup) // due, never started
	s.collect(time.Now(), []string{"a"}, 1, 0)
	if err := s.ledger.write(w); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	counts, hists := readLedger(t, path)
	b0, b2 := float64(t0.Unix()), float64(t0.Unix())+0.2
	want0 := map[string]int64{"fetch.offered": 2, "fetch.served": 1, "fetch.failed": 1, "fetch.failed.timeout": 1, "fetch.late": 1,
		"write.offered": 1, "write.shed": 1, "fetch.count": 2, "fetch.sum_us": 2_005_000, "write.count": 1, "write.sum_us": 9000}
	if got := counts[b0]; len(got) != len(want0) {
		t.Errorf("bucket 0 counts = %v, want %v", got, want0)
	} else {
		for k, v := range want0 {
			if got[k] != v {
				t.Errorf("bucket 0 %s = %d, want %d", k, got[k], v)
			}
		}
	}
	if got := counts[b2]; got["lookup.unsent"] != 1 || got["lookup.offered"] != 1 {
		t.Errorf("bucket 0.2 counts = %v", got)
	}
	fh := hists[b0]["fetch"]
	if fh == nil || fh.TotalCount() != 2 || fh.Max() < 1_990_000 {
		t.Fatalf("bucket 0 fetch histogram: %v", fh)
	}
	if wh := hists[b0]["write"]; wh == nil || wh.TotalCount() != 1 {
		t.Errorf("bucket 0 write histogram: %v", wh)
	}
	if len(hists[b2]) != 0 {
		t.Errorf("bucket 0.2 has latencies but nothing finished there: %v", hists[b2])
	}
}

// The outcomes of every offered operation add up to what was offered.
func TestOutcomesAddUpToOffered(t *testing.T) {
	s := newStats(1)
	due := time.Unix(1_700_000_000, 0)
	outs := []Outcome{Served, Stale, Shed, Failed, Served, Unfinished}
	for i, o := range outs {
		s.ledger.offer(due, opFetch)
		s.ledger.finish(i, due, opFetch, o, classIndex(ClassOther), false)
	}
	s.ledger.unsent(due, opFetch)
	s.ledger.fold(nil)
	var sum int64
	c := s.ledger.agg[bucketKey(due)].counts
	for _, n := range OutcomeNames {
		sum += c["fetch."+n]
	}
	if c["fetch.offered"] != 7 || sum != 7 {
		t.Errorf("offered %d, outcomes sum %d, want 7 and 7: %v", c["fetch.offered"], sum, c)
	}
}

// An operation answered after its caller's deadline is failed, class
// deadline, and counted as an error of that class; one answered in time,
// one already failed, and one cut off by the end of the run are not.
func TestAnsweredPastTheDeadlineIsNotServed(t *testing.T) {
	e := &Engine{cfg: Config{Deadline: time.Second}, stats: newStats(1)}
	w := &worker{e: e, kind: opFetch}
	cases := []struct {
		name      string
		d         time.Duration
		failClass int
		cancelled bool
		want      Outcome
	}{
		{"in time", 900 * time.Millisecond, -1, false, Served},
		{"late", 1500 * time.Millisecond, -1, false, Failed},
		{"already failed", 1500 * time.Millisecond, classIndex(ClassTimeout), false, Failed},
		{"run ended", 1500 * time.Millisecond, -1, true, Unfinished},
	}
	// a failure while the run was live stays a failure when the run ends
	// before the operation does; one caused by the end does not count
	ctx, cancel := context.WithCancel(context.Background())
	w.failClass, w.failedLive = -1, false
	w.fail(ctx, errors.New("dial tcp: connection refused"))
	cancel()
	if got := w.outcome(ctx); got != Failed {
		t.Errorf("failed, then the run ended: outcome %v, want failed", got)
	}
	w.failClass, w.failedLive = -1, false
	w.fail(ctx, context.Canceled)
	if got := w.outcome(ctx); got != Unfinished {
		t.Errorf("failed by the run's end: outcome %v, want unfinished", got)
	}
	w.failClass, w.failedLive = -1, false
	for _, c := range cases {
		ctx, cancel := context.WithCancel(context.Background())
		if c.cancelled {
			cancel()
		}
		w.failClass, w.failedLive = c.failClass, false
		w.pastDeadline(ctx, c.d)
		if got := w.outcome(ctx); got != c.want {
			t.Errorf("%s: outcome %v, want %v", c.name, got, c.want)
		}
		if c.name == "late" && w.failClass != classIndex(ClassDeadline) {
			t.Errorf("late: class %d, want deadline (%d)", w.failClass, classIndex(ClassDeadline))
		}
		cancel()
	}
	if n := e.stats.errs[opFetch][classIndex(ClassDeadline)].Load(); n != 1 {
		t.Errorf("deadline errors counted %d, want 1", n)
	}
	e.cfg.Deadline = 0
	w.failClass = -1
	w.pastDeadline(context.Background(), time.Hour)
	if w.failClass != -1 {
		t.Error("with no deadline (0) a slow answer is still served")
	}
}
