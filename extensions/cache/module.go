package cache

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.k6.io/k6/v2/js/modules"
	"go.k6.io/k6/v2/metrics"

	"github.com/firedrill-dev/firedrill/envvar"
	"github.com/firedrill-dev/firedrill/extensions/internal/faultevent"
	"github.com/firedrill-dev/firedrill/faults"
	"github.com/firedrill-dev/firedrill/faults/memcached"
	"github.com/firedrill-dev/firedrill/internal/opts"
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
	// expirer serves every VU's expireKeys over one connection per
	// server, for the servers in expirerAt.
	expirer   *memcached.Expirer
	expirerAt string
}

// New returns the root module.
func New() *RootModule { return &RootModule{} }

// ModuleInstance is one VU's view of the module.
type ModuleInstance struct {
	root *RootModule
	vu   modules.VU
	// env reads the harness's variables through k6, so `k6 run -e` reaches
	// the engine as it reaches the other modules.
	env     envvar.Lookup
	metrics map[string]*metrics.Metric
	events  *faultevent.Recorder
	// capacity is the database's measured capacity for fills (calibrate)
	capacity *metrics.Metric
}

// MetricCapacity is the gauge calibrate sets: the fills a second the
// database served when kept busy; the harness records it in the result.
const MetricCapacity = "firedrill_db_capacity"

// NewModuleInstance registers the metrics (idempotent in k6's registry)
// and returns the VU's instance.
func (r *RootModule) NewModuleInstance(vu modules.VU) modules.Instance {
	reg := vu.InitEnv().Registry
	mi := &ModuleInstance{root: r, vu: vu, env: vu.InitEnv().LookupEnv, metrics: map[string]*metrics.Metric{}}
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
	mi.capacity = reg.MustNewMetric(MetricCapacity, metrics.Gauge)
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
		"calibrate":    mi.Calibrate,
		"refillHotSet": mi.RefillHotSet,
		"expireKeys":   mi.ExpireKeys,
	}}
}

// Seed creates (or reuses) the records table.
func (mi *ModuleInstance) Seed(opts map[string]any) (map[string]any, error) {
	c, err := traffic.SeedConfigFromMapEnv(mi.env, opts)
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
	cfg, err := traffic.ConfigFromMapEnv(mi.env, opts)
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

// Calibrate measures the database's capacity for the fills a replay with
// these options makes ({ connections, duration } besides the replay's
// options: default 8 and "3s"), sets the gauge firedrill_db_capacity and
// returns { fillsPerSecond, meanMs, p99Ms, connections, fillWork }.
func (mi *ModuleInstance) Calibrate(m map[string]any) (map[string]any, error) {
	const op = "calibrate"
	state := mi.vu.State()
	if state == nil {
		return nil, errors.New("calibrate: call it from setup or a scenario, not the init context")
	}
	conns, d := 8, 3*time.Second
	rest := map[string]any{}
	for k, v := range m {
		rest[k] = v
	}
	var own struct {
		Connections int           `opt:"connections"`
		Duration    time.Duration `opt:"duration"`
	}
	sub := map[string]any{}
	for _, k := range []string{"connections", "duration"} {
		if v, ok := rest[k]; ok {
			sub[k] = v
			delete(rest, k)
		}
	}
	if err := opts.Decode(sub, &own); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if own.Connections > 0 {
		conns = own.Connections
	}
	if own.Duration > 0 {
		d = own.Duration
	}
	cfg, err := traffic.ConfigFromMapEnv(mi.env, rest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	c, err := traffic.Calibrate(mi.vu.Context(), cfg, conns, d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	tags := state.Tags.GetCurrentValues().Tags.With("fill_work", strconv.Itoa(c.FillWork))
	metrics.PushIfNotDone(mi.vu.Context(), state.Samples, metrics.Sample{
		TimeSeries: metrics.TimeSeries{Metric: mi.capacity, Tags: tags}, Time: time.Now(), Value: c.FillsPerSecond,
	})
	return map[string]any{
		"fillsPerSecond": c.FillsPerSecond, "meanMs": c.MeanMs, "p99Ms": c.P99Ms,
		"connections": c.Connections, "fillWork": c.FillWork,
	}, nil
}

// Replay runs the traffic and blocks until it ends; see index.d.ts.
func (mi *ModuleInstance) Replay(opts map[string]any) (map[string]any, error) {
	state := mi.vu.State()
	if state == nil {
		return nil, errors.New("replay: call it from a VU (default function or scenario), not the init context")
	}
	cfg, err := traffic.ConfigFromMapEnv(mi.env, opts)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	cfg.Stream = stream(state.Options.ExecutionSegment.String())
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
		"misses": s.Misses, "hitRatio": s.HitRatio(), "dbQueries": s.DBQueries, "dbHotReads": s.DBHotReads, "late": s.Late,
		"errors": errs, "opErrors": opErrs, "firstErrors": stringMap(s.FirstErrors),
		"lookups": s.Lookups, "lookupP50Ms": ms(s.LookupP50), "lookupP99Ms": ms(s.LookupP99),
		"requests": s.Requests, "tierCalls": s.TierCalls, "requestP50Ms": ms(s.RequestP50), "requestP99Ms": ms(s.RequestP99),
		"tenantWrites": s.TenantWrites, "writeP50Ms": ms(s.WriteP50), "writeP99Ms": ms(s.WriteP99),
		"fetchP50Ms": ms(s.FetchP50), "fetchP99Ms": ms(s.FetchP99), "fetchP999Ms": ms(s.FetchP999),
		"fetchMaxMs": ms(s.FetchMax), "dbP50Ms": ms(s.DBP50), "dbP99Ms": ms(s.DBP99),
		"elapsedS": s.Elapsed.Seconds(), "processes": s.Processes,
		"achievedRate": float64(s.Operations) / max(s.Elapsed.Seconds(), 1e-9),
		"retries":      s.Retries,
	}
	// The protections' counters, by the summary keys they register
	// (coalesced, leaseWon, breakerOpens, retriesDenied, tierFlagOffs, ...).
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

// steered is what every steering call takes besides its own options: the
// event's name on the timeline.
type steered struct {
	Name string `opt:"name"`
}

// steer is the prologue every steering call shares: its options object m
// is decoded into args, then a replay must be running in this k6 process.
// Option errors come first, so a script learns of a typo even where no
// replay runs.
func (mi *ModuleInstance) steer(op string, m map[string]any, args any) (*traffic.Engine, error) {
	if err := opts.Decode(m, args); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return mi.running(op)
}

// ExpireHotSet makes the hot set ({ keys }: default the replay's hotSet)
// expire at one instant.
func (mi *ModuleInstance) ExpireHotSet(m map[string]any) (map[string]any, error) {
	const op = "expireHotSet"
	var args struct {
		steered `opt:",inline"`
		Keys    int `opt:"keys"`
	}
	eng, err := mi.steer(op, m, &args)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	n, err := eng.ExpireHotSet(mi.vu.Context(), args.Keys)
	// an instant on the timeline: in place and gone at once
	mi.pushFault("hot_set_expiry", "inject", "top-"+strconv.Itoa(n), args.Name)
	mi.pushFault("hot_set_expiry", "remove", "top-"+strconv.Itoa(n), args.Name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return map[string]any{"keys": n, "elapsedMs": float64(time.Since(t0).Microseconds()) / 1000}, nil
}

// RefillHotSet stores the hot set ({ keys }: default the replay's hotSet)
// with one short TTL ({ ttl }), directly on the servers, so it expires all
// at once. It acts on the shared cache: call it from one generator (at()),
// and mark the window it opens with markFault.
func (mi *ModuleInstance) RefillHotSet(m map[string]any) (map[string]any, error) {
	const op = "refillHotSet"
	var args struct {
		steered `opt:",inline"`
		Keys    int           `opt:"keys"`
		TTL     time.Duration `opt:"ttl,required"`
	}
	eng, err := mi.steer(op, m, &args)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	n, err := eng.RefillHotSet(mi.vu.Context(), args.Keys, args.TTL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return map[string]any{"keys": n, "elapsedMs": float64(time.Since(t0).Microseconds()) / 1000}, nil
}

// ExpireKeys deletes { keys } on every memcached server at once, at their
// direct addresses (FIREDRILL_MEMCACHED_DIRECT): the hot-set expiry of a
// service under test, whose keys and client the engine does not own. It
// needs no running replay. Mark the window it opens with markFault.
func (mi *ModuleInstance) ExpireKeys(m map[string]any) (map[string]any, error) {
	const op = "expireKeys"
	var args struct {
		Keys []string `opt:"keys,required"`
	}
	if err := opts.Decode(m, &args); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	at := mi.env.Get(envvar.MemcachedDirect)
	var addrs []string
	for _, a := range strings.Split(at, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	t0 := time.Now()
	n, err := mi.root.expirerFor(at, addrs).Expire(mi.vu.Context(), args.Keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return map[string]any{"keys": len(args.Keys), "present": n, "servers": len(addrs),
		"elapsedMs": float64(time.Since(t0).Microseconds()) / 1000}, nil
}

// expirerFor returns the shared Expirer for the servers at addrs, built on
// first use: a drill that invalidates entries 30 times a second keeps one
// connection per server instead of dialling each for every delete.
func (r *RootModule) expirerFor(at string, addrs []string) *memcached.Expirer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.expirer == nil || r.expirerAt != at {
		if r.expirer != nil {
			_ = r.expirer.Close()
		}
		r.expirer, r.expirerAt = memcached.NewExpirer(addrs), at
	}
	return r.expirer
}

// FlipFormat moves { fraction } of the fleet to the other cache format
// (0 rolls back).
func (mi *ModuleInstance) FlipFormat(m map[string]any) (map[string]any, error) {
	const op = "flipFormat"
	var args struct {
		steered  `opt:",inline"`
		Fraction float64 `opt:"fraction,required"`
	}
	eng, err := mi.steer(op, m, &args)
	if err != nil {
		return nil, err
	}
	f, prev := args.Fraction, eng.FlipFraction()
	if err := eng.FlipFormat(f); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	action, shown := "inject", f
	if f == 0 {
		// the removal names what it removes, so the timeline pairs it
		// with its injection
		action, shown = "remove", prev
	}
	mi.pushFault("format_flip", action, "fraction="+strconv.FormatFloat(shown, 'g', -1, 64), args.Name)
	return map[string]any{"fraction": f}, nil
}

// Scale changes the fleet to { processes } processes.
func (mi *ModuleInstance) Scale(m map[string]any) (map[string]any, error) {
	const op = "scale"
	var args struct {
		steered   `opt:",inline"`
		Processes int `opt:"processes,required"`
	}
	eng, err := mi.steer(op, m, &args)
	if err != nil {
		return nil, err
	}
	n := args.Processes
	before := eng.Processes()
	if err := eng.Scale(n); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	mi.pushFault("scale", "inject", "processes="+strconv.Itoa(n), args.Name)
	return map[string]any{"before": before, "processes": n}, nil
}

// SetRate changes the arrival rate ({ rate } operations per second).
func (mi *ModuleInstance) SetRate(m map[string]any) (map[string]any, error) {
	const op = "setRate"
	var args struct {
		steered `opt:",inline"`
		Rate    float64 `opt:"rate,required"`
	}
	eng, err := mi.steer(op, m, &args)
	if err != nil {
		return nil, err
	}
	r := args.Rate
	before := eng.Rate()
	if err := eng.SetRate(r); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	mi.pushFault("rate", "inject", "rate="+strconv.FormatFloat(r, 'g', -1, 64), args.Name)
	return map[string]any{"before": before, "rate": r}, nil
}

// Protections changes protection switches of the running replay; keys not
// given keep their value. Returns the switches now in force.
func (mi *ModuleInstance) Protections(m map[string]any) (map[string]any, error) {
	const op = "protections"
	// The switches are the replay's protections option, whose decoder
	// lives with the replay's other options.
	var args struct {
		steered  `opt:",inline"`
		Switches map[string]any `opt:",rest"`
	}
	eng, err := mi.steer(op, m, &args)
	if err != nil {
		return nil, err
	}
	p := eng.Protections()
	if err := p.Apply(args.Switches); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := eng.SetProtections(p); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for k, v := range args.Switches {
		action := "inject"
		if b, ok := v.(bool); ok && !b {
			action = "remove"
		}
		mi.pushFault("protection", action, k, args.Name)
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
	fn, fsum := eng.FetchLatency()
	return map[string]any{
		"running": true, "rate": eng.Rate(), "processes": eng.Processes(), "protections": eng.Protections().Status(),
		"dbInflight": eng.DBInflight(), "dbSlots": eng.DBSlots(),
		"fetchesAnswered": fn, "fetchLatencySumMs": float64(fsum.Microseconds()) / 1000,
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
// lookupFraction, tenantWriteFraction, requestFraction }; keys not given
// keep their value),
// as a feature flag turning a query off does. On the timeline it is fault
// "mix" on target "fleet": inject while the mix differs from the replay's
// options, remove when it is back to them.
func (mi *ModuleInstance) SetMix(m map[string]any) (map[string]any, error) {
	const op = "setMix"
	var args mixArgs
	eng, err := mi.steer(op, m, &args)
	if err != nil {
		return nil, err
	}
	mix := eng.CurrentMix()
	args.apply(&mix)
	if err := eng.SetMix(mix); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	action := "inject"
	if mix == eng.Config().Mix {
		action = "remove"
	}
	mi.pushFault("mix", action, "fleet", args.Name)
	return mixMap(mix), nil
}

// mixArgs are setMix's options; a share not given is nil and keeps its
// running value.
type mixArgs struct {
	steered             `opt:",inline"`
	WriteFraction       *float64 `opt:"writeFraction"`
	MultiFraction       *float64 `opt:"multiFraction"`
	LookupFraction      *float64 `opt:"lookupFraction"`
	TenantWriteFraction *float64 `opt:"tenantWriteFraction"`
	RequestFraction     *float64 `opt:"requestFraction"`
}

// apply sets the given shares in m.
func (a mixArgs) apply(m *traffic.Mix) {
	for _, s := range []struct{ to, from *float64 }{
		{&m.WriteFraction, a.WriteFraction}, {&m.MultiFraction, a.MultiFraction},
		{&m.LookupFraction, a.LookupFraction}, {&m.TenantWriteFraction, a.TenantWriteFraction},
		{&m.RequestFraction, a.RequestFraction},
	} {
		if s.from != nil {
			*s.to = *s.from
		}
	}
}

func mixMap(m traffic.Mix) map[string]any {
	return map[string]any{"writeFraction": m.WriteFraction, "multiFraction": m.MultiFraction,
		"lookupFraction": m.LookupFraction, "tenantWriteFraction": m.TenantWriteFraction, "requestFraction": m.RequestFraction}
}

// HotSetKeys returns the cache keys of the k most popular records for the
// given key-building options (for verification scripts).
func (mi *ModuleInstance) HotSetKeys(m map[string]any) ([]string, error) {
	// Besides count it takes the replay's options, decoded with them.
	var args struct {
		Count  int            `opt:"count"`
		Replay map[string]any `opt:",rest"`
	}
	if err := opts.Decode(m, &args); err != nil {
		return nil, fmt.Errorf("hotSetKeys: %w", err)
	}
	k := args.Count
	c := traffic.NewConfig(traffic.WithCacheAddrs("127.0.0.1:1"))
	if err := traffic.ApplyMap(&c, args.Replay); err != nil {
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

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// stream is the traffic stream of the generator that runs k6's execution
// segment seg ("from:to"): 0 for the first generator, or the only one, so
// one generator replays what the seed has always given, and a hash of
// where the segment starts for every other, so that N generators offer N
// different shares of the fleet's traffic rather than one share N times
// (the same keys at the same instants: at --generators 2, hot-key-expiry's
// baseline carried half the steady database load of one generator).
func stream(seg string) uint64 {
	from, _, _ := strings.Cut(seg, ":")
	if from == "" || from == "0" {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(from))
	return h.Sum64() | 1
}
