package database

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/grafana/sobek"
	"go.k6.io/k6/v2/js/modulestest"
	"go.k6.io/k6/v2/lib"
	"go.k6.io/k6/v2/metrics"

	"github.com/firedrill-dev/firedrill/extensions/internal/jsopt"
	fdb "github.com/firedrill-dev/firedrill/faults/database"
)

// newVU returns a runtime with the module set as `database`, moved to the VU
// context, with env as its environment, and the channel samples go to.
func newVU(t *testing.T, env map[string]string) (*modulestest.Runtime, chan metrics.SampleContainer) {
	t.Helper()
	rt := modulestest.NewRuntime(t)
	mi := New().NewModuleInstance(rt.VU).(*ModuleInstance)
	mi.lookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := rt.VU.Runtime().Set("database", mi.Exports().Default); err != nil {
		t.Fatal(err)
	}
	samples := make(chan metrics.SampleContainer, 1000)
	rt.MoveToVUContext(&lib.State{Samples: samples, Tags: lib.NewVUStateTags(metrics.NewRegistry().RootTagSet())})
	return rt, samples
}

func TestInitContextAndMissingDSN(t *testing.T) {
	rt := modulestest.NewRuntime(t)
	mi := New().NewModuleInstance(rt.VU).(*ModuleInstance)
	_ = rt.VU.Runtime().Set("database", mi.Exports().Default)
	if _, err := rt.VU.Runtime().RunString(`database.capConnections(10)`); err == nil || !strings.Contains(err.Error(), "init context") {
		t.Fatalf("init context: %v", err)
	}
	rt2, _ := newVU(t, nil)
	if _, err := rt2.VU.Runtime().RunString(`database.capConnections(10)`); err == nil || !strings.Contains(err.Error(), EnvAdminDSN) {
		t.Fatalf("missing DSN: %v", err)
	}
}

// Options are decoded before the database is reached, so their errors show
// without one; valid ones get as far as the missing DSN.
func TestOptionErrors(t *testing.T) {
	rt, _ := newVU(t, nil)
	for _, tc := range []struct{ js, want string }{
		{`database.createTenants({ prefix: "firedrill_t", count: -1 })`, "database.createTenants: option count: must be a non-negative integer, got number -1"},
		{`database.createTenants({ prefix: "firedrill_t", count: 2, rows: 10 })`, EnvAdminDSN},
		{`database.startDDLStorm({ prefix: "firedrill_t", pauseMs: 1.5 })`, "database.startDDLStorm: option pauseMs: must be a non-negative integer, got number 1.5"},
		{`database.startDDLStorm({ prefix: "firedrill_t", types: "INT" })`, `database.startDDLStorm: option types: must be a list of strings, got string "INT"`},
		{`database.startDDLStorm({ prefix: "firedrill_t", pause: 5 })`, "database.startDDLStorm: option pause: unknown (known: chunkRows, chunkTimeMs, column, concurrency, criticalThreadsRunning, detached, maxDurationMs, method, passes, pauseMs, prefix, throttleThreadsRunning, types)"},
		{`database.startDDLStorm({ prefix: "firedrill_t", method: "copy", types: ["INT", "BIGINT"] })`, EnvAdminDSN},
		{`database.startQueryKiller({ thresholdMs: "1s" })`, `database.startQueryKiller: option thresholdMs: must be a non-negative integer, got string "1s"`},
		{`database.startQueryKiller({ detached: "yes" })`, `database.startQueryKiller: option detached: must be a boolean, got string "yes"`},
		{`database.planRegression({ table: "t", index: "i", method: 1 })`, "database.planRegression: option method: must be a string, got number 1"},
		{`database.planRegression({ table: "t" })`, "database.planRegression: table and index are required"},
		{`database.planRegression({ table: "t", index: "i", method: "drop" })`, EnvAdminDSN},
		{`database.revertPlanRegression({ table: "t", index: "i", method: "drop" })`, "database.revertPlanRegression: option method: unknown (known: index, schema, table)"},
		{`database.revertPlanRegression()`, "database.revertPlanRegression: missing options object"},
	} {
		_, err := rt.VU.Runtime().RunString(tc.js)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to say %q", tc.js, err, tc.want)
		}
	}
}

// Each option lands in its field of the injector's config, milliseconds
// as durations.
func TestOptionsToConfig(t *testing.T) {
	rt := sobek.New()
	decode := func(js string, dst any) {
		t.Helper()
		v, err := rt.RunString(js)
		if err == nil {
			err = jsopt.Decode(rt, v, dst)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var s stormOptions
	decode(`({ prefix: "firedrill_t", method: "copy", column: "qty", types: ["INT"], concurrency: 3, passes: 4,
		chunkRows: 250, pauseMs: 1500, throttleThreadsRunning: 5, maxDurationMs: 60000, detached: true })`, &s)
	want := fdb.StormConfig{Prefix: "firedrill_t", Method: "copy", Column: "qty", Types: []string{"INT"}, Concurrency: 3, Passes: 4,
		ChunkRows: 250, Pause: 1500 * time.Millisecond, ThrottleThreadsRunning: 5, MaxDuration: time.Minute}
	if got := s.config(); !reflect.DeepEqual(got, want) || !s.Detached {
		t.Errorf("storm config %+v (detached %v)\nwant %+v", got, s.Detached, want)
	}
	var k killerOptions
	decode(`({ thresholdMs: 2000, intervalMs: 100, maxPerScan: 7, prefix: "firedrill_", user: "app", maxDurationMs: 5000 })`, &k)
	wantK := fdb.KillerConfig{Threshold: 2 * time.Second, Interval: 100 * time.Millisecond, MaxPerScan: 7,
		Prefix: "firedrill_", User: "app", MaxDuration: 5 * time.Second}
	if got := k.config(); got != wantK || k.Detached {
		t.Errorf("killer config %+v (detached %v)\nwant %+v", got, k.Detached, wantK)
	}
}
