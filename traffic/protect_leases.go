package traffic

import (
	"fmt"
	"time"
)

// leases uses memcached's leases (meta protocol: mg with N vivifies a miss
// so exactly one client wins, W, and fills; the others see the empty
// placeholder, Z, wait and re-read, then fall back to the database without
// writing), as Facebook's memcache leases cut a hot key's stampede.
//
// A loser's waits double from Wait up to MaxWait (default 20 ms, as Wait:
// one at most Wait keeps the wait fixed). Every re-read is a round trip, and a hot key has hundreds of
// losers while its fill runs: at a fixed 20 ms they re-read 2,000 times a
// second on top of 3,000 fetches, on a 2-core machine enough to slow the
// very fill they wait for (a hot-key-expiry leases replay's fills took
// 1.6 s, and its losers gave up and went to the database).
type leases struct {
	On      bool          `opt:"leases"`
	TTL     time.Duration `opt:"leaseTTL"`
	Wait    time.Duration `opt:"leaseWait"`
	MaxWait time.Duration `opt:"leaseMaxWait"`
	Tries   int           `opt:"leaseTries"`
}

func init() {
	Register(Spec{
		Name: "leases", Doc: "memcached leases: the first reader of a missing key fills it, the others wait for that fill",
		// IdentityCache's fetch_multi reads its misses in one query, with no
		// lease per key.
		Ops:       []string{KindFetch},
		Conflicts: []string{"fillLock"},
		Counters:  []CounterSpec{{MetricLeaseWon, "leaseWon"}, {MetricFillWaits, "fillWaits"}},
		New: func() Protection {
			return &leases{TTL: 3 * time.Second, Wait: 20 * time.Millisecond, MaxWait: 20 * time.Millisecond, Tries: 5}
		},
	})
}

func (l *leases) Enabled() bool  { return l.On }
func (l *leases) fillOrder() int { return 1 }

func (l *leases) Validate() error {
	switch {
	case l.TTL < time.Second:
		return fmt.Errorf("leaseTTL: %v must be >= 1s", l.TTL)
	case l.Wait <= 0:
		return fmt.Errorf("leaseWait: %v must be > 0", l.Wait)
	case l.Tries < 0:
		return fmt.Errorf("leaseTries: %d must be >= 0", l.Tries)
	case l.MaxWait < 0:
		return fmt.Errorf("leaseMaxWait: %v must be >= 0", l.MaxWait)
	}
	return nil
}

func (l *leases) fill(f *fillCall, next func() error) error {
	w, mc := f.w, f.w.e.cache
	vivify := ttlSeconds(l.TTL)
	reader := w.e.reader(f.v)
	wait := l.Wait
	for try := 0; ; try++ {
		r, err := mc.MetaGet(f.ctx, f.key, vivify, 0)
		if err != nil {
			w.countErr(f.ctx, err)
			_, err = w.load(f.ctx, f.p, f.id)
			return err
		}
		if r.Found && len(r.Value) > 0 {
			if ent, derr := reader.Decode(r.Value); derr == nil && time.Now().UnixMilli() < ent.ExpiresAt {
				return nil // filled by another reader meanwhile
			}
			// expired or foreign: no lease goes with a value; refill as
			// the incident's readers did
			return next()
		}
		if r.Won || !r.Found {
			w.counter(f.p, MetricLeaseWon, 1)
			f.store = mc.MetaSet // answers the lease
			return next()
		}
		if try >= l.Tries { // the placeholder is another reader's
			_, err = w.load(f.ctx, f.p, f.id)
			return err
		}
		w.counter(f.p, MetricFillWaits, 1)
		if !sleepCtx(f.ctx, wait) {
			return f.ctx.Err()
		}
		wait = l.next(wait)
	}
}

// next is the wait after wait: twice it, up to MaxWait, never below Wait.
func (l *leases) next(wait time.Duration) time.Duration {
	return max(min(2*wait, l.MaxWait), l.Wait)
}

var (
	_ Protection = (*leases)(nil)
	_ fillHook   = (*leases)(nil)
)
