package cache

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.k6.io/k6/v2/js/modules"
	"go.k6.io/k6/v2/metrics"

	"github.com/firedrill-dev/firedrill/extensions/internal/faultevent"
	"github.com/firedrill-dev/firedrill/faults"
	"github.com/firedrill-dev/firedrill/traffic"
)

// Compile-time checks that the k6 module interfaces are met.
var (
	_ modules.Module   = (*RootModule)(nil)
	_ modules.Instance = (*ModuleInstance)(nil)
)

// MetricFault is the counter the harness reads to draw the fault timeline.
const MetricFault = faultevent.MetricName

// RootModule is shared by every VU of the k6 process. It holds the running
// engine, so a steering call from one VU (a fault scenario) reaches the
// replay another VU started.
type RootModule struct {
	mu     sync.Mutex
	engine *traffic.Engine
}

// New returns the root module.
func New() *RootModule { return &RootModule{} }

// ModuleInstance is one VU's view of the module.
type ModuleInstance struct {
	root    *RootModule
	vu      modules.VU
	metrics map[string]*metrics.Metric
	events  *faultevent.Recorder
}

// NewModuleInstance registers the metrics (idempotent in k6's registry)
// and returns the VU's instance.
func (r *RootModule) NewModuleInstance(vu modules.VU) modules.Instance {
	reg := vu.InitEnv().Registry
	mi := &ModuleInstance{root: r, vu: vu, metrics: map[string]*metrics.Metric{}}
	for name, kind := range traffic.MetricKinds() {
		var m *metrics.Metric
		switch kind {
		case traffic.Counter:
			m = reg.MustNewMetric(name, metrics.Counter)
		case traffic.Trend:
			m = reg.MustNewMetric(name, metrics.Trend, metrics.Time)
		case traffic.Gauge:
			m = reg.MustNewMetric(name, metrics.Gauge)
		}
		mi.metrics[name] = m
	}
	mi.events = faultevent.NewRecorder(vu, "cache")
	return mi
}

// Exports names the JS API.
func (mi *ModuleInstance) Exports() modules.Exports {
	return modules.Exports{Named: map[string]any{
		"seed":         mi.Seed,
		"replay":       mi.Replay,
		"expireHotSet": mi.ExpireHotSet,
		"flipFormat":   mi.FlipFormat,
		"scale":        mi.Scale,
		"setRate":      mi.SetRate,
		"protections":  mi.Protections,
		"status":       mi.Status,
		"setMix":       mi.SetMix,
		"hotSetKeys":   mi.HotSetKeys,
		"warm":         mi.Warm,
	}}
}

// Seed creates (or reuses) the records table.
func (mi *ModuleInstance) Seed(opts map[string]any) (map[string]any, error) {
	c, err := traffic.SeedConfigFromMap(opts)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	res, err := traffic.Seed(mi.vu.Context(), c)
	if err != nil {
		return nil, err
	}
	return map[string]any{"reused": res.Reused, "rows": res.Rows, "elapsedMs": res.Elapsed.Milliseconds(), "table": c.Table}, nil
}

// Warm fills the most popular entries ({ warm }, with the replay's key and
// format options) without replaying traffic; see index.d.ts.
func (mi *ModuleInstance) Warm(opts map[string]any) (map[string]any, error) {
	if mi.vu.State() == nil {
		return nil, errors.New("warm: call it from setup or a scenario, not the init context")
	}
	cfg, err := traffic.ConfigFromMap(opts)
	if err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	t0 := time.Now()
	n, err := traffic.Prefill(mi.vu.Context(), cfg)
	if err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	return map[string]any{"keys": n, "elapsedMs": time.Since(t0).Milliseconds()}, nil
}

// Replay runs the traffic and blocks until it ends; see index.d.ts.
func (mi *ModuleInstance) Replay(opts map[string]any) (map[string]any, error) {
	state := mi.vu.State()
	if state == nil {
		return nil, errors.New("replay: call it from a VU (default function or scenario), not the init context")
	}
	cfg, err := traffic.ConfigFromMap(opts)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	ctx := mi.vu.Context()
	base := state.Tags.GetCurrentValues().Tags
	samples := state.Samples
	sink := traffic.SinkFunc(func(ss []traffic.Sample) {
		out := make(metrics.Samples, 0, len(ss))
		for _, s := range ss {
			m := mi.metrics[s.Metric]
			if m == nil {
				continue
			}
			tags := base
			for k, v := range s.Tags {
				tags = tags.With(k, v)
			}
			out = append(out, metrics.Sample{TimeSeries: metrics.TimeSeries{Metric: m, Tags: tags}, Time: s.Time, Value: s.Value})
		}
		if len(out) > 0 {
			metrics.PushIfNotDone(ctx, samples, out)
		}
	})
	eng, err := traffic.New(cfg, sink)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	// The start of traffic (after the warm-up fill) is where a drill's
	// time begins; its end closes the replay on the timeline.
	ended, marked := make(chan struct{}), make(chan struct{})
	defer func() {
		close(ended)
		<-marked
		mi.events.Record(faults.Event{Fault: faults.Traffic, Action: faults.Remove, Target: "replay", Marker: true})
	}()
	go func() {
		defer close(marked)
		select {
		case <-eng.Started():
		case <-ended:
			select {
			case <-eng.Started():
			default:
				return // it never started
			}
		}
		mi.events.RecordAt(faults.Event{Fault: faults.Traffic, Action: faults.Inject, Target: "replay", Marker: true}, eng.StartTime())
	}()
	mi.root.mu.Lock()
	if mi.root.engine != nil {
		mi.root.mu.Unlock()
		return nil, errors.New("replay: a replay is already running in this k6 process")
	}
	mi.root.engine = eng
	mi.root.mu.Unlock()
	defer func() {
		mi.root.mu.Lock()
		mi.root.engine = nil
		mi.root.mu.Unlock()
	}()
	s, err := eng.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return summaryMap(s), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func summaryMap(s traffic.Summary) map[string]any {
	errs := map[string]any{}
	for k, v := range s.Errors {
		errs[k] = v
	}
	opErrs := map[string]any{}
	for k, v := range s.OpErrors {
		opErrs[k] = v
	}
	out := map[string]any{
		"operations": s.Operations, "unsent": s.Unsent, "fetches": s.Fetches, "hits": s.Hits,
		"misses": s.Misses, "hitRatio": s.HitRatio(), "dbQueries": s.DBQueries, "late": s.Late,
		"errors": errs, "opErrors": opErrs,
		"lookups": s.Lookups, "lookupP50Ms": ms(s.LookupP50), "lookupP99Ms": ms(s.LookupP99),
		"tenantWrites": s.TenantWrites, "writeP50Ms": ms(s.WriteP50), "writeP99Ms": ms(s.WriteP99),
		"fetchP50Ms": ms(s.FetchP50), "fetchP99Ms": ms(s.FetchP99), "fetchP999Ms": ms(s.FetchP999),
		"fetchMaxMs": ms(s.FetchMax), "dbP50Ms": ms(s.DBP50), "dbP99Ms": ms(s.DBP99),
		"elapsedS": s.Elapsed.Seconds(), "processes": s.Processes,
		"achievedRate": float64(s.Operations) / max(s.Elapsed.Seconds(), 1e-9),
		"retries":      s.Retries,
	}
	// The protections' counters, by the summary keys they register
	// (coalesced, leaseWon, breakerOpens, retriesDenied, ...).
	for k, v := range s.Protections {
		out[k] = v
	}
	return out
}

func (mi *ModuleInstance) running(op string) (*traffic.Engine, error) {
	mi.root.mu.Lock()
	defer mi.root.mu.Unlock()
	if mi.root.engine == nil {
		return nil, fmt.Errorf("%s: no replay is running in this k6 process", op)
	}
	return mi.root.engine, nil
}

// pushFault records one steering action on the fault timeline: a fault
// (a format flip, a hot-set expiry) or a marker (scaling, a rate or mix
// change, a protection switched: steps and responses, not faults).
func (mi *ModuleInstance) pushFault(kind, action, target, name string) {
	a := faults.Inject
	if action == "remove" {
		a = faults.Remove
	}
	mi.events.Record(faults.Event{Fault: kind, Action: a, Target: target, Name: name, Marker: markers[kind]})
}

// markers are the steering actions that are steps or protections.
var markers = map[string]bool{"scale": true, "rate": true, "mix": true, "protection": true}

// steer is the prologue every steering call shares: only the allowed keys
// (and "name", the event's name on the timeline) may appear, numbers are
// read into nums by key (a key in required must be given), and a replay must
// be running in this k6 process. Option errors come first, so a script
// learns of a typo even where no replay runs.
func (mi *ModuleInstance) steer(op string, opts map[string]any, nums map[string]*float64, required ...string) (*traffic.Engine, string, error) {
	allowed := []string{"name"}
	for k := range nums {
		allowed = append(allowed, k)
	}
	if err := steerArgs(op, opts, allowed...); err != nil {
		return nil, "", err
	}
	for k, dst := range nums {
		v, ok, err := optNumber(op, opts, k, slices.Contains(required, k))
		if err != nil {
			return nil, "", err
		}
		if ok {
			*dst = v
		}
	}
	name, err := optName(opts)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", op, err)
	}
	eng, err := mi.running(op)
	return eng, name, err
}

// steerArgs pulls the allowed keys out of an option map, rejecting others.
func steerArgs(op string, m map[string]any, allowed ...string) error {
	for k := range m {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return fmt.Errorf("%s: unknown option %q", op, k)
		}
	}
	return nil
}

func optName(m map[string]any) (string, error) {
	v, ok := m["name"]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("option name: must be a string, got %T", v)
	}
	return s, nil
}

func optNumber(op string, m map[string]any, key string, required bool) (float64, bool, error) {
	v, ok := m[key]
	if !ok {
		if required {
			return 0, false, fmt.Errorf("%s: option %s is required", op, key)
		}
		return 0, false, nil
	}
	switch n := v.(type) {
	case int64:
		return float64(n), true, nil
	case float64:
		return n, true, nil
	case int:
		return float64(n), true, nil
	}
	return 0, false, fmt.Errorf("%s: option %s: must be a number, got %T", op, key, v)
}

// ExpireHotSet makes the hot set ({ keys }: default the replay's hotSet)
// expire at one instant.
func (mi *ModuleInstance) ExpireHotSet(opts map[string]any) (map[string]any, error) {
	const op = "expireHotSet"
	var k float64
	eng, name, err := mi.steer(op, opts, map[string]*float64{"keys": &k})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	n, err := eng.ExpireHotSet(mi.vu.Context(), int(k))
	mi.pushFault("hot_set_expiry", "inject", "top-"+strconv.Itoa(n), name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return map[string]any{"keys": n, "elapsedMs": float64(time.Since(t0).Microseconds()) / 1000}, nil
}

// FlipFormat moves { fraction } of the fleet to the other cache format
// (0 rolls back).
func (mi *ModuleInstance) FlipFormat(opts map[string]any) (map[string]any, error) {
	const op = "flipFormat"
	var f float64
	eng, name, err := mi.steer(op, opts, map[string]*float64{"fraction": &f}, "fraction")
	if err != nil {
		return nil, err
	}
	if err := eng.FlipFormat(f); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	action := "inject"
	if f == 0 {
		action = "remove"
	}
	mi.pushFault("format_flip", action, "fraction="+strconv.FormatFloat(f, 'g', -1, 64), name)
	return map[string]any{"fraction": f}, nil
}

// Scale changes the fleet to { processes } processes.
func (mi *ModuleInstance) Scale(opts map[string]any) (map[string]any, error) {
	const op = "scale"
	var n float64
	eng, name, err := mi.steer(op, opts, map[string]*float64{"processes": &n}, "processes")
	if err != nil {
		return nil, err
	}
	if n != float64(int(n)) {
		return nil, fmt.Errorf("%s: option processes: must be an integer", op)
	}
	before := eng.Processes()
	if err := eng.Scale(int(n)); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	mi.pushFault("scale", "inject", "processes="+strconv.Itoa(int(n)), name)
	return map[string]any{"before": before, "processes": int(n)}, nil
}

// SetRate changes the arrival rate ({ rate } operations per second).
func (mi *ModuleInstance) SetRate(opts map[string]any) (map[string]any, error) {
	const op = "setRate"
	var r float64
	eng, name, err := mi.steer(op, opts, map[string]*float64{"rate": &r}, "rate")
	if err != nil {
		return nil, err
	}
	before := eng.Rate()
	if err := eng.SetRate(r); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	mi.pushFault("rate", "inject", "rate="+strconv.FormatFloat(r, 'g', -1, 64), name)
	return map[string]any{"before": before, "rate": r}, nil
}

// Protections changes protection switches of the running replay; keys not
// given keep their value. Returns the switches now in force.
func (mi *ModuleInstance) Protections(opts map[string]any) (map[string]any, error) {
	const op = "protections"
	eng, err := mi.running(op)
	if err != nil {
		return nil, err
	}
	name, err := optName(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	m := make(map[string]any, len(opts))
	for k, v := range opts {
		if k != "name" {
			m[k] = v
		}
	}
	p := eng.Protections()
	if err := p.Apply(m); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := eng.SetProtections(p); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for k, v := range m {
		action := "inject"
		if b, ok := v.(bool); ok && !b {
			action = "remove"
		}
		mi.pushFault("protection", action, k, name)
	}
	return eng.Protections().Status(), nil
}

// Status reports the running replay's steering state, or { running: false }.
func (mi *ModuleInstance) Status() map[string]any {
	mi.root.mu.Lock()
	eng := mi.root.engine
	mi.root.mu.Unlock()
	if eng == nil {
		return map[string]any{"running": false}
	}
	m := eng.CurrentMix()
	tot := eng.Totals()
	return map[string]any{
		"running": true, "rate": eng.Rate(), "processes": eng.Processes(), "protections": eng.Protections().Status(),
		"mix":      mixMap(m),
		"counters": int64Map(tot.Counters), "errors": int64Map(tot.Errors), "opErrors": int64Map(tot.OpErrors),
	}
}

func int64Map(m map[string]int64) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SetMix changes the operation mix ({ writeFraction, multiFraction,
// lookupFraction }; keys not given keep their value), as a feature flag
// turning a query off does. On the timeline it is fault "mix" on target
// "fleet": inject while the mix differs from the replay's options, remove
// when it is back to them.
func (mi *ModuleInstance) SetMix(opts map[string]any) (map[string]any, error) {
	const op = "setMix"
	// The given shares land in set; the others keep the running values.
	var set traffic.Mix
	given := mixShares(&set)
	eng, name, err := mi.steer(op, opts, given)
	if err != nil {
		return nil, err
	}
	m := eng.CurrentMix()
	cur := mixShares(&m)
	for k := range opts {
		if dst, ok := cur[k]; ok {
			*dst = *given[k]
		}
	}
	if err := eng.SetMix(m); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	action := "inject"
	if m == eng.Config().Mix {
		action = "remove"
	}
	mi.pushFault("mix", action, "fleet", name)
	return mixMap(m), nil
}

// mixShares names the fields of m by their option keys.
func mixShares(m *traffic.Mix) map[string]*float64 {
	return map[string]*float64{"writeFraction": &m.WriteFraction, "multiFraction": &m.MultiFraction,
		"lookupFraction": &m.LookupFraction, "tenantWriteFraction": &m.TenantWriteFraction}
}

func mixMap(m traffic.Mix) map[string]any {
	return map[string]any{"writeFraction": m.WriteFraction, "multiFraction": m.MultiFraction,
		"lookupFraction": m.LookupFraction, "tenantWriteFraction": m.TenantWriteFraction}
}

// HotSetKeys returns the cache keys of the k most popular records for the
// given key-building options (for verification scripts).
func (mi *ModuleInstance) HotSetKeys(opts map[string]any) ([]string, error) {
	k := 0
	if v, ok := opts["count"]; ok {
		n, _, err := optNumber("hotSetKeys", map[string]any{"count": v}, "count", true)
		if err != nil {
			return nil, err
		}
		k = int(n)
	}
	rest := map[string]any{}
	for key, v := range opts {
		if key != "count" {
			rest[key] = v
		}
	}
	c := traffic.NewConfig(traffic.WithCacheAddrs("127.0.0.1:1"))
	if err := traffic.ApplyMap(&c, rest); err != nil {
		return nil, fmt.Errorf("hotSetKeys: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("hotSetKeys: %w", err)
	}
	if k <= 0 {
		k = c.HotSet
	}
	kb := traffic.NewKeyBuilder(c.Namespace, c.CacheVersion, c.Model, c.SchemaHash)
	ids := traffic.HotSetIDs(k, c.Keys)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = kb.Key(id)
	}
	return out, nil
}
