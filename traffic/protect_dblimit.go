package traffic

import "fmt"

// dbLimit caps the database queries a process runs at once; a query over
// the cap fails fast (outcome shed, error class shed) instead of queueing
// for the pool: a bounded pool that sheds.
type dbLimit struct {
	Limit int `opt:"dbLimit"`
}

func init() {
	Register(Spec{
		Name: "dbLimit", Doc: "at most this many database queries at once per process; the rest are shed, not queued",
		Ops: []string{KindFetch, KindMulti, KindWrite, KindLookup},
		New: func() Protection { return &dbLimit{} },
	})
}

func (d *dbLimit) Enabled() bool { return d.Limit > 0 }

func (d *dbLimit) Validate() error {
	if d.Limit < 0 {
		return fmt.Errorf("dbLimit: %d must be >= 0 (0 is off)", d.Limit)
	}
	return nil
}

func (d *dbLimit) db(_ *worker, p *process, next func() error) error {
	if p.busy.Add(1) > int64(d.Limit) {
		p.busy.Add(-1)
		return errShed
	}
	defer p.busy.Add(-1)
	return next()
}

var (
	_ Protection = (*dbLimit)(nil)
	_ dbHook     = (*dbLimit)(nil)
)
