package container

import (
	"strings"
	"testing"

	"go.k6.io/k6/v2/js/modulestest"
	"go.k6.io/k6/v2/lib"
	"go.k6.io/k6/v2/metrics"
)

func TestRefusesWithoutRunIDAndInInitContext(t *testing.T) {
	rt := modulestest.NewRuntime(t)
	mi := New().NewModuleInstance(rt.VU).(*ModuleInstance)
	mi.lookupEnv = func(string) (string, bool) { return "", false }
	_ = rt.VU.Runtime().Set("container", mi.Exports().Default)
	if _, err := rt.VU.Runtime().RunString(`container.stop("mysql")`); err == nil || !strings.Contains(err.Error(), "init context") {
		t.Fatalf("init context: %v", err)
	}
	rt.MoveToVUContext(&lib.State{Samples: make(chan metrics.SampleContainer, 10), Tags: lib.NewVUStateTags(metrics.NewRegistry().RootTagSet())})
	if _, err := rt.VU.Runtime().RunString(`container.stop("mysql")`); err == nil || !strings.Contains(err.Error(), "FIREDRILL_RUN_ID") {
		t.Fatalf("no run id: %v", err)
	}
}
