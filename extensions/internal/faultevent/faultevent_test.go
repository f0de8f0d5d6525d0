package faultevent

import (
	"strings"
	"testing"
	"time"

	"go.k6.io/k6/v2/js/modulestest"
	"go.k6.io/k6/v2/lib"
	"go.k6.io/k6/v2/metrics"

	"github.com/firedrill-dev/firedrill/faults"
)

// newVU returns a runtime still in the init context, its recorder, and a
// function that moves it to a running VU tagged scenario=<scenario>,
// returning the channel its samples go to.
func newVU(t *testing.T, scenario string) (*modulestest.Runtime, *Recorder, func() chan metrics.SampleContainer) {
	t.Helper()
	rt := modulestest.NewRuntime(t)
	registry := rt.VU.InitEnv().Registry
	r := NewRecorder(rt.VU, "test")
	if m := registry.Get(MetricName); m == nil || m.Type != metrics.Counter {
		t.Fatalf("%s not registered as a counter: %+v", MetricName, m)
	}
	return rt, r, func() chan metrics.SampleContainer {
		samples := make(chan metrics.SampleContainer, 10)
		rt.MoveToVUContext(&lib.State{
			Samples: samples,
			Tags:    lib.NewVUStateTags(registry.RootTagSet().With("scenario", scenario)),
		})
		return samples
	}
}

// events lists the samples as scenario/fault/action/target/name, and checks
// each is one firedrill_fault count.
func events(t *testing.T, samples chan metrics.SampleContainer) []string {
	t.Helper()
	var got []string
	for _, sc := range metrics.GetBufferedSamples(samples) {
		for _, s := range sc.GetSamples() {
			if s.Metric.Name != MetricName || s.Value != 1 {
				t.Errorf("sample %+v", s)
			}
			m := s.Tags.Map()
			got = append(got, strings.Join([]string{m["scenario"], m["fault"], m["action"], m["target"], m["name"]}, "/"))
		}
	}
	return got
}

func TestRecordPushesOneSamplePerEvent(t *testing.T) {
	_, r, run := newVU(t, "fault")
	// In the init context there is nowhere to push: dropped, no panic.
	r.Record(faults.Event{Fault: "latency", Action: faults.Inject, Target: "memcached-0"})
	samples := run()
	r.Record(faults.Event{Fault: "latency", Action: faults.Inject, Target: "memcached-0", Name: "slow"})
	r.Record(faults.Event{Fault: "partition", Action: faults.Remove, Target: "memcached-1"})
	got := strings.Join(events(t, samples), " ")
	if want := "fault/latency/inject/memcached-0/slow fault/partition/remove/memcached-1/"; got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
}

// An event recorded after its VU's context ended is dropped without a
// backlog, and with one it waits for a live VU's Flush, keeping its time.
func TestBacklogKeepsLateEventsUntilAFlush(t *testing.T) {
	var late Backlog

	rtA, a, runA := newVU(t, "storm")
	a.WithBacklog(&late)
	samplesA := runA()
	rtDrop, drop, runDrop := newVU(t, "plain")
	samplesDrop := runDrop()
	rtA.CancelContext()
	rtDrop.CancelContext()

	before := time.Now()
	a.Record(faults.Event{Fault: "ddl_storm", Action: faults.Remove, Target: "firedrill_t_", Name: "copy"})
	drop.Record(faults.Event{Fault: "ddl_storm", Action: faults.Remove, Target: "firedrill_t_"})
	if got := events(t, samplesA); len(got) != 0 {
		t.Fatalf("pushed from a finished VU: %v", got)
	}
	if got := events(t, samplesDrop); len(got) != 0 {
		t.Fatalf("pushed from a finished VU: %v", got)
	}
	if len(late.samples) != 1 {
		t.Fatalf("backlog holds %d samples, want 1", len(late.samples))
	}

	// A flush from a finished VU keeps the backlog as it is.
	a.Flush()
	if len(late.samples) != 1 {
		t.Fatalf("a finished VU's flush emptied the backlog: %d left", len(late.samples))
	}
	// A VU without the backlog, or in the init context, has nothing to flush.
	drop.Flush()
	_, b, runB := newVU(t, "teardown")
	b.WithBacklog(&late)
	b.Flush()
	if len(late.samples) != 1 {
		t.Fatalf("flushed in the init context: %d left", len(late.samples))
	}

	samplesB := runB()
	time.Sleep(5 * time.Millisecond)
	b.Flush()
	flushed := metrics.GetBufferedSamples(samplesB)
	if len(flushed) != 1 || len(late.samples) != 0 {
		t.Fatalf("flushed %d samples, %d left; want 1 and 0", len(flushed), len(late.samples))
	}
	s := flushed[0].GetSamples()[0]
	if m := s.Tags.Map(); m["scenario"] != "storm" || m["fault"] != "ddl_storm" || m["name"] != "copy" {
		t.Errorf("flushed sample's tags %v, want the recording VU's", m)
	}
	if s.Time.Before(before) || !s.Time.Before(time.Now().Add(-4*time.Millisecond)) {
		t.Errorf("flushed sample timed %v, want the time of its event (%v)", s.Time, before)
	}
}
