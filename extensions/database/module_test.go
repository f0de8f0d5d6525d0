package database

import (
	"strings"
	"testing"

	"go.k6.io/k6/v2/js/modulestest"
	"go.k6.io/k6/v2/lib"
	"go.k6.io/k6/v2/metrics"
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
