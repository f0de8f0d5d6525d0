// Package faultevent puts fault injections and removals on the fault
// timeline from firedrill's k6 modules (k6/x/toxiproxy, k6/x/database,
// k6/x/container): each faults.Event becomes one sample of the
// firedrill_fault counter, tagged with the VU's tags and fault, action,
// target and name. The harness draws the timeline from those samples in
// k6's output.
package faultevent

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.k6.io/k6/v2/js/common"
	"go.k6.io/k6/v2/js/modules"
	"go.k6.io/k6/v2/metrics"

	"github.com/firedrill-dev/firedrill/faults"
)

// MetricName is the Counter every injection and removal adds 1 to.
const MetricName = "firedrill_fault"

// MarkerTag is set to "true" on the samples of markers (faults.Event's
// Marker): steps and protections, not faults.
const MarkerTag = "marker"

// ErrInitContext is what a fault module answers, wrapped with the call's
// name, to a call made in the init context: faults act while the test
// runs, and only then is there a timeline to record them on.
var ErrInitContext = errors.New("faults can only be injected while the test runs (setup, scenarios, teardown), not in the init context")

// Recorder pushes events as samples from one VU.
type Recorder struct {
	vu      modules.VU
	metric  *metrics.Metric
	backlog *Backlog
}

var _ faults.Recorder = (*Recorder)(nil)

// NewRecorder registers the firedrill_fault counter (k6's registry gives
// every VU the same one) and returns vu's recorder. Call it from
// NewModuleInstance: registering needs the init context. When that fails
// it throws a JS exception that starts with module.
func NewRecorder(vu modules.VU, module string) *Recorder {
	m, err := vu.InitEnv().Registry.NewMetric(MetricName, metrics.Counter)
	if err != nil {
		common.Throw(vu.Runtime(), fmt.Errorf("%s: register %s: %w", module, MetricName, err))
	}
	return &Recorder{vu: vu, metric: m}
}

// WithBacklog makes r keep the samples it can no longer push in b, instead
// of dropping them, and returns r.
func (r *Recorder) WithBacklog(b *Backlog) *Recorder {
	r.backlog = b
	return r
}

// Record pushes one firedrill_fault sample for e, timed now. Outside a
// running VU (init context) there is nowhere to push and the event is
// dropped. When the VU's context is over (background work outlived the
// scenario that started it) the sample goes to the backlog if r has one,
// and is dropped otherwise.
func (r *Recorder) Record(e faults.Event) { r.RecordAt(e, time.Now()) }

// RecordAt is Record for an event that happened at t.
func (r *Recorder) RecordAt(e faults.Event, t time.Time) {
	state := r.vu.State()
	if state == nil {
		return
	}
	tags := state.Tags.GetCurrentValues().Tags.
		With("fault", e.Fault).With("action", string(e.Action)).
		With("target", e.Target).With("name", e.Name)
	if e.Marker {
		tags = tags.With(MarkerTag, "true")
	}
	sample := metrics.Sample{
		TimeSeries: metrics.TimeSeries{Metric: r.metric, Tags: tags},
		Time:       t,
		Value:      1,
	}
	if !metrics.PushIfNotDone(r.vu.Context(), state.Samples, sample) && r.backlog != nil {
		r.backlog.add(sample)
	}
}

// Flush pushes the backlog's samples from r's VU, each with the time of
// its event, so the timeline still shows when the work ended. What cannot
// be pushed stays in the backlog, in order. Without a backlog, or outside
// a running VU, it does nothing.
func (r *Recorder) Flush() {
	state := r.vu.State()
	if r.backlog == nil || state == nil {
		return
	}
	b := r.backlog
	b.mu.Lock()
	pending := b.samples
	b.samples = nil
	b.mu.Unlock()
	for i, s := range pending {
		if !metrics.PushIfNotDone(r.vu.Context(), state.Samples, s) {
			b.mu.Lock()
			b.samples = append(pending[i:], b.samples...)
			b.mu.Unlock()
			return
		}
	}
}

// Backlog holds the samples of events recorded after their VU's context
// ended, which k6 would drop, until a live VU flushes them. A root module
// keeps one for all its VUs; the zero value is ready to use.
type Backlog struct {
	mu      sync.Mutex
	samples []metrics.Sample
}

func (b *Backlog) add(s metrics.Sample) {
	b.mu.Lock()
	b.samples = append(b.samples, s)
	b.mu.Unlock()
}
