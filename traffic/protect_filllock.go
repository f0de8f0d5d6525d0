package traffic

import (
	"errors"
	"fmt"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/memcache"
)

// fillLock is IdentityCache's fill lock: the winner of an add on the lock
// key fills; losers wait and re-read, then fall back to the database
// without writing, so a slow filler is not overwritten by stale loads.
type fillLock struct {
	On    bool          `opt:"fillLock"`
	Wait  time.Duration `opt:"fillLockWait"`
	Tries int           `opt:"fillLockTries"`
}

func init() {
	Register(Spec{
		Name: "fillLock", Doc: "IdentityCache's fill lock: one filler per key across processes, the others wait and re-read",
		// IdentityCache's fetch_multi takes no fill lock.
		Ops:       []string{KindFetch},
		Conflicts: []string{"leases"},
		Counters:  []CounterSpec{{MetricFillWaits, "fillWaits"}},
		New:       func() Protection { return &fillLock{Wait: 50 * time.Millisecond, Tries: 3} },
	})
}

func (l *fillLock) Enabled() bool  { return l.On }
func (l *fillLock) fillOrder() int { return 1 }

func (l *fillLock) Validate() error {
	switch {
	case l.Wait <= 0:
		return fmt.Errorf("fillLockWait: %v must be > 0", l.Wait)
	case l.Tries < 0:
		return fmt.Errorf("fillLockTries: %d must be >= 0", l.Tries)
	}
	return nil
}

func (l *fillLock) fill(f *fillCall, next func() error) error {
	w, mc := f.w, f.w.e.cache
	lockKey := f.key + ":lock"
	lockTTL := ttlSeconds(time.Duration(l.Tries+1)*l.Wait + w.e.cfg.DBTimeout)
	err := mc.Add(f.ctx, lockKey, []byte("1"), lockTTL)
	switch {
	case err == nil:
		err := next()
		_ = mc.Delete(f.ctx, lockKey)
		return err
	case errors.Is(err, memcache.ErrNotStored):
		reader := w.e.reader(f.v)
		for i := 0; i < l.Tries; i++ {
			w.counter(f.p, MetricFillWaits, 1)
			if !sleepCtx(f.ctx, l.Wait) {
				return f.ctx.Err()
			}
			if val, err := mc.Get(f.ctx, f.key); err == nil {
				if _, derr := reader.Decode(val); derr == nil {
					return nil
				}
			}
		}
	default:
		w.countErr(f.ctx, err)
	}
	_, err = w.load(f.ctx, f.p, f.id)
	return err
}

var (
	_ Protection = (*fillLock)(nil)
	_ fillHook   = (*fillLock)(nil)
)
