package toxiproxy

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	toxiserver "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.k6.io/k6/v2/js/modulestest"
	"go.k6.io/k6/v2/lib"
	"go.k6.io/k6/v2/metrics"
)

// startToxiproxy runs the real Toxiproxy API (the pinned module) in-process
// with one proxy "memcached-0" and returns the API URL.
func startToxiproxy(t *testing.T) string {
	t.Helper()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := toxiserver.NewServer(toxiserver.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	go srv.Listen("127.0.0.1", strconv.Itoa(port))
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for i := 0; i < 250; i++ {
		if resp, err := http.Get(base + "/version"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	up, _ := net.Listen("tcp", "127.0.0.1:0")
	t.Cleanup(func() { up.Close() })
	body := `{"name":"memcached-0","listen":"127.0.0.1:0","upstream":"` + up.Addr().String() + `"}`
	resp, err := http.Post(base+"/proxies", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create proxy: %v %v", err, resp)
	}
	resp.Body.Close()
	return base
}

func TestModule(t *testing.T) {
	base := startToxiproxy(t)
	rt := modulestest.NewRuntime(t)
	root := New()
	mi := root.NewModuleInstance(rt.VU).(*ModuleInstance)
	mi.lookupEnv = func(k string) (string, bool) {
		if k == EnvURL {
			return base, true
		}
		return "", false
	}
	if err := rt.VU.Runtime().Set("toxiproxy", mi.Exports().Default); err != nil {
		t.Fatal(err)
	}

	// In the init context a call must fail, not act.
	if _, err := rt.VU.Runtime().RunString(`toxiproxy.disable("memcached-0")`); err == nil || !strings.Contains(err.Error(), "init context") {
		t.Fatalf("init context call: %v", err)
	}

	samples := make(chan metrics.SampleContainer, 100)
	registry := metrics.NewRegistry()
	rt.MoveToVUContext(&lib.State{
		Samples: samples,
		Tags:    lib.NewVUStateTags(registry.RootTagSet().With("scenario", "fault")),
	})

	_, err := rt.VU.Runtime().RunString(`
		const t = toxiproxy.addToxic("memcached-0", { name: "slow", type: "latency", stream: "downstream", toxicity: 1.0, attributes: { latency: 100, jitter: 10 } });
		if (t.name !== "slow" || t.attributes.latency !== 100) throw new Error("bad toxic " + JSON.stringify(t));
		toxiproxy.updateToxic("memcached-0", "slow", { attributes: { latency: 50 } });
		toxiproxy.disable("memcached-0");
		const ps = toxiproxy.proxies();
		if (ps.length !== 1 || ps[0].enabled || ps[0].toxics.length !== 1) throw new Error("bad proxies " + JSON.stringify(ps));
		toxiproxy.cleanup();
		toxiproxy.cleanup();
		const after = toxiproxy.proxies();
		if (!after[0].enabled || after[0].toxics.length !== 0) throw new Error("not cleaned " + JSON.stringify(after));
	`)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ js, want string }{
		{`toxiproxy.addToxic("memcached-0", { type: "lag" })`, `unknown toxic type "lag"`},
		{`toxiproxy.addToxic("memcached-0", { type: "latency", stream: "up" })`, `bad stream "up"`},
		{`toxiproxy.addToxic("memcached-0", { type: "latency", toxicity: 2 })`, `toxicity 2 out of [0, 1]`},
		{`toxiproxy.addToxic("nope", { type: "latency" })`, `"nope"`},
		{`toxiproxy.addToxic("", { type: "latency" })`, `missing proxy`},
		{`toxiproxy.addToxic("memcached-0", { type: "latency", latency: 5 })`, `option latency: unknown (known: attributes, name, stream, toxicity, type)`},
		{`toxiproxy.addToxic("memcached-0", { name: "slow" })`, `option type: required but not given`},
		{`toxiproxy.addToxic("memcached-0", { type: "latency", toxicity: "half" })`, `option toxicity: must be a number, got string "half"`},
		{`toxiproxy.updateToxic("memcached-0", "slow", { latency: 5 })`, `option latency: unknown (known: attributes, toxicity)`},
		{`toxiproxy.addToxic("memcached-0")`, `missing options object`},
		{`toxiproxy.removeToxic("memcached-0", "nothing")`, `not found`},
	} {
		_, err := rt.VU.Runtime().RunString(tc.js)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.js, err, tc.want)
		}
	}

	var got []string
	for _, sc := range metrics.GetBufferedSamples(samples) {
		for _, s := range sc.GetSamples() {
			if s.Metric.Name != FaultMetric || s.Value != 1 {
				t.Fatalf("sample %+v", s)
			}
			m := s.Tags.Map()
			if m["scenario"] != "fault" {
				t.Errorf("VU tags lost: %v", m)
			}
			got = append(got, m["fault"]+"/"+m["action"]+"/"+m["target"]+"/"+m["name"])
		}
	}
	want := []string{
		"latency/inject/memcached-0/slow",
		"latency/inject/memcached-0/slow",
		"partition/inject/memcached-0/",
		"latency/remove/memcached-0/slow",
		"partition/remove/memcached-0/",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}
