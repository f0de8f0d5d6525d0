//go:build integration

package container

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"go.k6.io/k6/v2/js/modulestest"
	"go.k6.io/k6/v2/lib"
	"go.k6.io/k6/v2/metrics"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/environments/envtest"
)

// A real environment from environments.Up; without Docker the tests fail.
var env *environments.Env

func TestMain(m *testing.M) {
	envtest.Main(m, func(e *environments.Env) { env = e }, environments.WithMemcached(1))
}

func TestFromJavaScript(t *testing.T) {
	rt := modulestest.NewRuntime(t)
	mi := New().NewModuleInstance(rt.VU).(*ModuleInstance)
	mi.lookupEnv = func(k string) (string, bool) {
		if k == EnvRunID {
			return env.RunID, true
		}
		return os.LookupEnv(k)
	}
	_ = rt.VU.Runtime().Set("container", mi.Exports().Default)
	samples := make(chan metrics.SampleContainer, 100)
	rt.MoveToVUContext(&lib.State{Samples: samples, Tags: lib.NewVUStateTags(metrics.NewRegistry().RootTagSet())})
	_, err := rt.VU.Runtime().RunString(`
		const state = (s) => container.services().find((x) => x.service === s).state;
		container.pause("memcached-0");
		if (state("memcached-0") !== "paused") throw new Error("not paused");
		container.stop("mysql", 0);
		if (state("mysql") !== "exited") throw new Error("mysql " + state("mysql"));
		let threw = false;
		try { container.stop("toxiproxy"); } catch (e) { threw = true; }
		if (!threw) throw new Error("toxiproxy accepted");
		container.cleanup();
		container.cleanup();
		if (state("memcached-0") !== "running" || state("mysql") !== "running") throw new Error("not back");
	`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sc := range metrics.GetBufferedSamples(samples) {
		for _, s := range sc.GetSamples() {
			m := s.Tags.Map()
			got = append(got, fmt.Sprintf("%s/%s/%s", m["fault"], m["action"], m["target"]))
		}
	}
	want := "container_pause/inject/memcached-0 container_stop/inject/mysql container_pause/remove/memcached-0 container_stop/remove/mysql"
	if strings.Join(got, " ") != want {
		t.Fatalf("events %v", got)
	}
}
