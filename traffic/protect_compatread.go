package traffic

import "github.com/firedrill-dev/firedrill/traffic/format"

// compatRead lets readers decode both cache formats (a dual read), so a
// format flip does not turn the other side's entries into misses.
type compatRead struct {
	On bool `opt:"compatRead"`
}

func init() {
	Register(Spec{
		Name: "compatRead", Doc: "read both cache formats, so a format flip does not turn entries into misses",
		Ops: []string{KindFetch, KindMulti},
		New: func() Protection { return &compatRead{} },
	})
}

func (c *compatRead) Enabled() bool   { return c.On }
func (c *compatRead) Validate() error { return nil }

func (c *compatRead) reader(r format.Reader) format.Reader {
	r.Compatible = true
	return r
}

var (
	_ Protection = (*compatRead)(nil)
	_ readHook   = (*compatRead)(nil)
)
