// Package faults holds what every fault injector shares: the timeline event
// each injection and removal reports. The injectors themselves live in the
// sub-packages (toxiproxy, database, container); they are plain Go, take a
// context, and know nothing of k6, so they can be tested and reused alone.
package faults

// Action says whether a fault started or ended.
type Action string

// The two actions of the fault timeline.
const (
	Inject Action = "inject"
	Remove Action = "remove"
)

// Event is one point on the fault timeline: the harness draws faults from
// these, so every injection and every removal reports exactly one.
type Event struct {
	// Fault is the kind: a toxic type (latency, timeout, ...), partition,
	// connection_cap, plan_regression, ddl_storm, statement_limit,
	// query_killer, container_stop, container_pause, container_kill,
	// unreachable.
	Fault string
	// Action is Inject or Remove.
	Action Action
	// Target is the proxy, server or schema the fault acts on.
	Target string
	// Name is the toxic's name, or "" for faults that have none.
	Name string
	// Marker is true for a step or a protection rather than a fault (a
	// statement time limit, a query killer, an autoscaler's scaling, a
	// feature switch, the start and end of traffic): it is drawn on the
	// timeline but never opens a phase of its own.
	Marker bool
}

// Marker kinds the harness reads.
const (
	// Traffic marks the start (Inject) and end (Remove) of a replay's
	// traffic: a drill's time runs from the first start.
	Traffic = "traffic"
)

// Recorder receives timeline events. The k6 extensions turn them into
// samples of the firedrill_fault metric.
type Recorder interface {
	Record(Event)
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(Event)

// Record calls f(e).
func (f RecorderFunc) Record(e Event) { f(e) }

// Discard is a Recorder that drops every event; the default when none is set.
var Discard Recorder = RecorderFunc(func(Event) {})

var _ Recorder = RecorderFunc(nil)
