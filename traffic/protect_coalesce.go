package traffic

// coalesce merges concurrent fills of one key inside one process
// (singleflight), as a per-process request coalescer does: one caller
// fills, the others wait for its result.
type coalesce struct {
	On bool `opt:"coalesce"`
}

func init() {
	Register(Spec{
		Name: "coalesce", Doc: "one fill per key at a time inside a process; the other callers share its result",
		Ops:      []string{KindFetch},
		Counters: []CounterSpec{{MetricCoalesced, "coalesced"}},
		New:      func() Protection { return &coalesce{} },
	})
}

func (c *coalesce) Enabled() bool   { return c.On }
func (c *coalesce) Validate() error { return nil }
func (c *coalesce) fillOrder() int  { return 0 }

// fill lets the first caller of a key fill it; the callers that arrive
// while it runs share its outcome (a failed fill fails them too, with its
// error counted once, by the filler).
func (c *coalesce) fill(f *fillCall, next func() error) error {
	leader := false
	_, err, _ := f.p.group.Do(f.key+"|"+f.v.String(), func() (any, error) {
		leader = true
		return nil, next()
	})
	if leader {
		return err
	}
	f.w.counter(f.p, MetricCoalesced, 1)
	if err != nil {
		return sharedError{err}
	}
	return nil
}

var (
	_ Protection = (*coalesce)(nil)
	_ fillHook   = (*coalesce)(nil)
)
