package traffic

import (
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"
)

// MetricDeadlockRetries counts database calls retried after InnoDB chose
// them as a deadlock's victim.
const MetricDeadlockRetries = "db_deadlock_retries"

// deadlockRetry retries a database call that InnoDB chose as a deadlock's
// victim (error 1213), as MySQL's manual asks applications to: the
// victim's statement was rolled back, so a retry cannot apply a write
// twice. Online schema change tools' triggers and chunk copies take row
// locks beside the application's writes, and deadlocks follow; an
// application that migrates online retries them.
type deadlockRetry struct {
	Retries int `opt:"deadlockRetries"`
}

func init() {
	Register(Spec{
		Name: "deadlockRetries", Doc: "retry a database call InnoDB rolled back as a deadlock's victim, up to this many times",
		Ops:      []string{KindFetch, KindMulti, KindWrite, KindLookup},
		Counters: []CounterSpec{{MetricDeadlockRetries, "deadlockRetries"}},
		New:      func() Protection { return &deadlockRetry{} },
	})
}

func (d *deadlockRetry) Enabled() bool { return d.Retries > 0 }

func (d *deadlockRetry) Validate() error {
	if d.Retries < 0 || d.Retries > 10 {
		return fmt.Errorf("deadlockRetries: %d must be in [0, 10] (0 is off)", d.Retries)
	}
	return nil
}

func (d *deadlockRetry) db(w *worker, p *process, next func() error) error {
	for i := 0; ; i++ {
		err := next()
		if i >= d.Retries || !isDeadlock(err) {
			return err
		}
		w.counter(p, MetricDeadlockRetries, 1)
	}
}

// isDeadlock says whether err is InnoDB's ER_LOCK_DEADLOCK.
func isDeadlock(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1213
}

var (
	_ Protection = (*deadlockRetry)(nil)
	_ dbHook     = (*deadlockRetry)(nil)
)
