package database

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/firedrill-dev/firedrill/envvar"

	"github.com/grafana/sobek"
	"go.k6.io/k6/v2/js/modules"

	"github.com/firedrill-dev/firedrill/extensions/internal/faultevent"
	"github.com/firedrill-dev/firedrill/extensions/internal/jsopt"
	fdb "github.com/firedrill-dev/firedrill/faults/database"
)

// Environment variables set by the harness.
const (
	EnvAdminDSN = envvar.MySQLAdminDSN // direct DSN with root rights
	EnvFlavor   = envvar.DBFlavor      // mariadb | mysql ("" = ask the server)
	EnvProxy    = envvar.MySQLProxy    // the target name in events (default "mysql")
)

// FaultMetric is the Counter every injection and removal adds 1 to, tagged
// fault, action, target and name.
const FaultMetric = faultevent.MetricName

// RootModule holds the one injector every VU shares, so what one scenario
// starts another (or teardown) can stop, and cleanup() sees all of it.
type RootModule struct {
	once sync.Once
	in   *fdb.Injector
	err  error

	mu     sync.Mutex
	storms map[string]*fdb.Storm // by tenant prefix
	killer *fdb.Killer

	// late holds events of background work that ended after the context
	// of the VU that started it (its scenario ended): k6 would drop them.
	// The next call from any VU pushes them with their own time, so the
	// timeline still shows when the work ended.
	late faultevent.Backlog
}

// ModuleInstance is the module as one VU sees it.
type ModuleInstance struct {
	root      *RootModule
	vu        modules.VU
	events    *faultevent.Recorder
	lookupEnv func(string) (string, bool)
}

var (
	_ modules.Module   = (*RootModule)(nil)
	_ modules.Instance = (*ModuleInstance)(nil)
)

// New returns the root module; register.go registers it.
func New() *RootModule { return &RootModule{storms: map[string]*fdb.Storm{}} }

// NewModuleInstance registers the fault metric and returns the VU's instance.
func (r *RootModule) NewModuleInstance(vu modules.VU) modules.Instance {
	return &ModuleInstance{
		root: r, vu: vu, lookupEnv: vu.InitEnv().LookupEnv,
		events: faultevent.NewRecorder(vu, "database").WithBacklog(&r.late),
	}
}

func (mi *ModuleInstance) env(k string) string {
	if mi.lookupEnv == nil {
		return ""
	}
	v, _ := mi.lookupEnv(k)
	return v
}

// Exports returns the JS API; the default export carries the same functions.
func (mi *ModuleInstance) Exports() modules.Exports {
	named := map[string]any{
		"flavor":                mi.Flavor,
		"capConnections":        mi.CapConnections,
		"restoreConnections":    mi.RestoreConnections,
		"planRegression":        mi.PlanRegression,
		"revertPlanRegression":  mi.RevertPlanRegression,
		"createTenants":         mi.CreateTenants,
		"dropTenants":           mi.DropTenants,
		"startDDLStorm":         mi.StartDDLStorm,
		"ddlStormStats":         mi.DDLStormStats,
		"stopDDLStorm":          mi.StopDDLStorm,
		"setStatementLimit":     mi.SetStatementLimit,
		"restoreStatementLimit": mi.RestoreStatementLimit,
		"waitQuiet":             mi.WaitQuiet,
		"startQueryKiller":      mi.StartQueryKiller,
		"queryKillerStats":      mi.QueryKillerStats,
		"stopQueryKiller":       mi.StopQueryKiller,
		"cleanup":               mi.Cleanup,
	}
	return modules.Exports{Default: named, Named: named}
}

// begin returns the call's context (read now) and the shared injector,
// opened on first use.
func (mi *ModuleInstance) begin(op string) (context.Context, *fdb.Injector, error) {
	if mi.vu.State() == nil {
		return nil, nil, fmt.Errorf("database.%s: %w", op, faultevent.ErrInitContext)
	}
	mi.events.Flush()
	ctx := mi.vu.Context()
	mi.root.once.Do(func() {
		dsn := mi.env(EnvAdminDSN)
		if dsn == "" {
			mi.root.err = fmt.Errorf("%s is not set", EnvAdminDSN)
			return
		}
		opts := []fdb.Option{}
		if p := mi.env(EnvProxy); p != "" {
			opts = append(opts, fdb.WithTarget(p))
		}
		// The pool outlives this VU's context: detach, the timeout bounds it.
		mi.root.in, mi.root.err = fdb.Open(context.WithoutCancel(ctx), dsn, fdb.Flavor(mi.env(EnvFlavor)), opts...)
	})
	if mi.root.err != nil {
		return nil, nil, fmt.Errorf("database.%s: %w", op, mi.root.err)
	}
	return ctx, mi.root.in.WithRecorder(mi.events), nil
}

// Flavor is database.flavor(): "mariadb" or "mysql".
func (mi *ModuleInstance) Flavor() (string, error) {
	_, in, err := mi.begin("flavor")
	if err != nil {
		return "", err
	}
	return string(in.Flavor()), nil
}

// CapConnections is database.capConnections(n): returns the limit in effect.
func (mi *ModuleInstance) CapConnections(n int) (int, error) {
	ctx, in, err := mi.begin("capConnections")
	if err != nil {
		return 0, err
	}
	return in.CapConnections(ctx, n)
}

// RestoreConnections is database.restoreConnections().
func (mi *ModuleInstance) RestoreConnections() error {
	ctx, in, err := mi.begin("restoreConnections")
	if err != nil {
		return err
	}
	return in.RestoreConnections(ctx)
}

// The option structs below are decoded before anything else, so a typo
// shows even where no database is reachable. Options named ...Ms are whole
// milliseconds.

// indexOptions are revertPlanRegression's options.
type indexOptions struct {
	Schema string `opt:"schema"`
	Table  string `opt:"table"`
	Index  string `opt:"index"`
}

// planOptions are planRegression's: the index and how to lose it.
type planOptions struct {
	indexOptions `opt:",inline"`
	Method       string `opt:"method"`
}

func (o indexOptions) check() error {
	if o.Table == "" || o.Index == "" {
		return errors.New("table and index are required")
	}
	return nil
}

// PlanRegression is database.planRegression({schema, table, index, method}).
func (mi *ModuleInstance) PlanRegression(v sobek.Value) error {
	var o planOptions
	err := jsopt.Decode(mi.vu.Runtime(), v, &o)
	if err == nil {
		err = o.check()
	}
	if err != nil {
		return fmt.Errorf("database.planRegression: %w", err)
	}
	ctx, in, err := mi.begin("planRegression")
	if err != nil {
		return err
	}
	return in.PlanRegression(ctx, o.Schema, o.Table, o.Index, o.Method)
}

// RevertPlanRegression is database.revertPlanRegression({schema, table, index}).
func (mi *ModuleInstance) RevertPlanRegression(v sobek.Value) error {
	var o indexOptions
	err := jsopt.Decode(mi.vu.Runtime(), v, &o)
	if err == nil {
		err = o.check()
	}
	if err != nil {
		return fmt.Errorf("database.revertPlanRegression: %w", err)
	}
	ctx, in, err := mi.begin("revertPlanRegression")
	if err != nil {
		return err
	}
	return in.RevertPlanRegression(ctx, o.Schema, o.Table, o.Index)
}

// tenantOptions are createTenants' options.
type tenantOptions struct {
	Prefix string `opt:"prefix"`
	Count  uint   `opt:"count"`
	Rows   uint   `opt:"rows"`
}

// CreateTenants is database.createTenants({prefix, count, rows}).
func (mi *ModuleInstance) CreateTenants(v sobek.Value) error {
	var o tenantOptions
	if err := jsopt.Decode(mi.vu.Runtime(), v, &o); err != nil {
		return fmt.Errorf("database.createTenants: %w", err)
	}
	ctx, in, err := mi.begin("createTenants")
	if err != nil {
		return err
	}
	return in.CreateTenants(ctx, o.Prefix, int(o.Count), int(o.Rows))
}

// DropTenants is database.dropTenants(prefix): returns how many it dropped.
func (mi *ModuleInstance) DropTenants(prefix string) (int, error) {
	ctx, in, err := mi.begin("dropTenants")
	if err != nil {
		return 0, err
	}
	return in.DropTenants(ctx, prefix)
}

// stormOptions are startDDLStorm's options.
type stormOptions struct {
	Prefix                 string   `opt:"prefix"`
	Method                 string   `opt:"method"`
	Column                 string   `opt:"column"`
	Types                  []string `opt:"types"`
	Concurrency            uint     `opt:"concurrency"`
	Passes                 uint     `opt:"passes"`
	ChunkRows              uint     `opt:"chunkRows"`
	PauseMs                uint     `opt:"pauseMs"`
	ThrottleThreadsRunning uint     `opt:"throttleThreadsRunning"`
	CriticalThreadsRunning uint     `opt:"criticalThreadsRunning"`
	ChunkTimeMs            uint     `opt:"chunkTimeMs"`
	MaxDurationMs          uint     `opt:"maxDurationMs"`
	Detached               bool     `opt:"detached"`
}

func (o stormOptions) config() fdb.StormConfig {
	return fdb.StormConfig{
		Prefix: o.Prefix, Method: o.Method, Column: o.Column, Types: o.Types,
		Concurrency: int(o.Concurrency), Passes: int(o.Passes), ChunkRows: int(o.ChunkRows),
		Pause: ms(o.PauseMs), ThrottleThreadsRunning: int(o.ThrottleThreadsRunning),
		CriticalThreadsRunning: int(o.CriticalThreadsRunning), ChunkTime: ms(o.ChunkTimeMs),
		MaxDuration: ms(o.MaxDurationMs),
	}
}

func ms(n uint) time.Duration { return time.Duration(n) * time.Millisecond }

// StartDDLStorm is database.startDDLStorm({prefix, method, column, types,
// concurrency, passes, chunkRows, pauseMs, throttleThreadsRunning,
// criticalThreadsRunning, chunkTimeMs, maxDurationMs, detached}). It returns the prefix, the storm's handle.
func (mi *ModuleInstance) StartDDLStorm(v sobek.Value) (string, error) {
	var o stormOptions
	if err := jsopt.Decode(mi.vu.Runtime(), v, &o); err != nil {
		return "", fmt.Errorf("database.startDDLStorm: %w", err)
	}
	cfg := o.config()
	ctx, in, err := mi.begin("startDDLStorm")
	if err != nil {
		return "", err
	}
	if ctx, err = detach(ctx, "startDDLStorm", o.Detached, cfg.MaxDuration); err != nil {
		return "", err
	}
	mi.root.mu.Lock()
	defer mi.root.mu.Unlock()
	if s, ok := mi.root.storms[cfg.Prefix]; ok && s.Stats().Running {
		return "", fmt.Errorf("database.startDDLStorm: a storm on %q is already running", cfg.Prefix)
	}
	s, err := in.StartDDLStorm(ctx, cfg)
	if err != nil {
		return "", err
	}
	mi.root.storms[cfg.Prefix] = s
	return cfg.Prefix, nil
}

// DDLStormStats is database.ddlStormStats(prefix).
func (mi *ModuleInstance) DDLStormStats(prefix string) (map[string]any, error) {
	s, err := mi.storm("ddlStormStats", prefix)
	if err != nil {
		return nil, err
	}
	return stormJS(s.Stats()), nil
}

// StopDDLStorm is database.stopDDLStorm(prefix): stops it, waits for the
// in-flight migrations and returns its stats.
func (mi *ModuleInstance) StopDDLStorm(prefix string) (map[string]any, error) {
	s, err := mi.storm("stopDDLStorm", prefix)
	if err != nil {
		return nil, err
	}
	s.ReportTo(mi.events)
	return stormJS(s.Stop()), nil
}

// storm returns the storm started on prefix, running or ended.
func (mi *ModuleInstance) storm(op, prefix string) (*fdb.Storm, error) {
	if _, _, err := mi.begin(op); err != nil {
		return nil, err
	}
	mi.root.mu.Lock()
	s, ok := mi.root.storms[prefix]
	mi.root.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("database.%s: no storm on %q", op, prefix)
	}
	return s, nil
}

type quietOptions struct {
	ThreadsRunning uint `opt:"threadsRunning"`
	TimeoutMs      uint `opt:"timeoutMs"`
}

// WaitQuiet is database.waitQuiet({threadsRunning, timeoutMs}): the
// seconds it waited for the server to run at most threadsRunning
// statements (default 2: the check's own and a sampler's reading), at most
// timeoutMs (default 60000).
func (mi *ModuleInstance) WaitQuiet(v sobek.Value) (float64, error) {
	o := quietOptions{ThreadsRunning: 2, TimeoutMs: 60000}
	if v != nil && !sobek.IsUndefined(v) { // the options are optional
		if err := jsopt.Decode(mi.vu.Runtime(), v, &o); err != nil {
			return 0, fmt.Errorf("database.waitQuiet: %w", err)
		}
	}
	ctx, in, err := mi.begin("waitQuiet")
	if err != nil {
		return 0, err
	}
	d, err := in.WaitQuiet(ctx, int(o.ThreadsRunning), ms(o.TimeoutMs))
	return d.Seconds(), err
}

// SetStatementLimit is database.setStatementLimit(ms) (0 = no limit).
func (mi *ModuleInstance) SetStatementLimit(ms int) error {
	ctx, in, err := mi.begin("setStatementLimit")
	if err != nil {
		return err
	}
	return in.SetStatementLimit(ctx, time.Duration(ms)*time.Millisecond)
}

// RestoreStatementLimit is database.restoreStatementLimit().
func (mi *ModuleInstance) RestoreStatementLimit() error {
	ctx, in, err := mi.begin("restoreStatementLimit")
	if err != nil {
		return err
	}
	return in.RestoreStatementLimit(ctx)
}

// killerOptions are startQueryKiller's options.
type killerOptions struct {
	ThresholdMs   uint   `opt:"thresholdMs"`
	IntervalMs    uint   `opt:"intervalMs"`
	MaxPerScan    uint   `opt:"maxPerScan"`
	Prefix        string `opt:"prefix"`
	User          string `opt:"user"`
	MaxDurationMs uint   `opt:"maxDurationMs"`
	Detached      bool   `opt:"detached"`
}

func (o killerOptions) config() fdb.KillerConfig {
	return fdb.KillerConfig{
		Threshold: ms(o.ThresholdMs), Interval: ms(o.IntervalMs), MaxPerScan: int(o.MaxPerScan),
		Prefix: o.Prefix, User: o.User, MaxDuration: ms(o.MaxDurationMs),
	}
}

// StartQueryKiller is database.startQueryKiller({thresholdMs, intervalMs,
// maxPerScan, prefix, user, maxDurationMs, detached}).
func (mi *ModuleInstance) StartQueryKiller(v sobek.Value) error {
	var o killerOptions
	if err := jsopt.Decode(mi.vu.Runtime(), v, &o); err != nil {
		return fmt.Errorf("database.startQueryKiller: %w", err)
	}
	cfg := o.config()
	ctx, in, err := mi.begin("startQueryKiller")
	if err != nil {
		return err
	}
	if ctx, err = detach(ctx, "startQueryKiller", o.Detached, cfg.MaxDuration); err != nil {
		return err
	}
	mi.root.mu.Lock()
	defer mi.root.mu.Unlock()
	if mi.root.killer != nil {
		if st := mi.root.killer.Stats(); st.Running {
			return errors.New("database.startQueryKiller: a query killer is already running")
		}
	}
	k, err := in.StartQueryKiller(ctx, cfg)
	if err != nil {
		return err
	}
	mi.root.killer = k
	return nil
}

// QueryKillerStats is database.queryKillerStats().
func (mi *ModuleInstance) QueryKillerStats() (map[string]any, error) {
	k, err := mi.killer("queryKillerStats")
	if err != nil {
		return nil, err
	}
	return killerJS(k.Stats()), nil
}

// StopQueryKiller is database.stopQueryKiller(): returns its stats.
func (mi *ModuleInstance) StopQueryKiller() (map[string]any, error) {
	k, err := mi.killer("stopQueryKiller")
	if err != nil {
		return nil, err
	}
	k.ReportTo(mi.events)
	return killerJS(k.Stop()), nil
}

// killer returns the last query killer started, running or ended.
func (mi *ModuleInstance) killer(op string) (*fdb.Killer, error) {
	if _, _, err := mi.begin(op); err != nil {
		return nil, err
	}
	mi.root.mu.Lock()
	k := mi.root.killer
	mi.root.mu.Unlock()
	if k == nil {
		return nil, fmt.Errorf("database.%s: no query killer was started", op)
	}
	return k, nil
}

// detach applies a background job's detached option: the job outlives the
// scenario that starts it, so it must have a maximum duration to end by.
func detach(ctx context.Context, op string, detached bool, maxDuration time.Duration) (context.Context, error) {
	if !detached {
		return ctx, nil
	}
	if maxDuration <= 0 {
		return nil, fmt.Errorf("database.%s: detached needs maxDurationMs", op)
	}
	return context.WithoutCancel(ctx), nil
}

// Cleanup is database.cleanup(): stops storms and the killer, restores
// indexes, max_connections and the statement limit. Safe to call twice.
func (mi *ModuleInstance) Cleanup() error {
	ctx, in, err := mi.begin("cleanup")
	if err != nil {
		return err
	}
	return in.Cleanup(ctx)
}

// stormJS and killerJS give JS camelCase keys whatever k6's field mapper does.
func stormJS(s fdb.StormStats) map[string]any {
	return map[string]any{
		"migrations": s.Migrations, "failed": s.Failed, "rowsCopied": s.RowsCopied,
		"throttledMs": s.ThrottledMs, "running": s.Running, "error": s.Error,
	}
}

func killerJS(s fdb.KillerStats) map[string]any {
	return map[string]any{"killed": s.Killed, "scans": s.Scans, "running": s.Running, "error": s.Error}
}
