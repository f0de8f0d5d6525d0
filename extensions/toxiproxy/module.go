package toxiproxy

import (
	"context"
	"fmt"
	"sync"

	"github.com/firedrill-dev/firedrill/envvar"

	"github.com/grafana/sobek"
	"go.k6.io/k6/v2/js/modules"

	"github.com/firedrill-dev/firedrill/extensions/internal/faultevent"
	"github.com/firedrill-dev/firedrill/extensions/internal/jsopt"
	"github.com/firedrill-dev/firedrill/faults/toxiproxy"
)

// Environment variables set by the harness.
const (
	// EnvURL is the Toxiproxy API base URL.
	EnvURL = envvar.Toxiproxy
	// DefaultURL is used when EnvURL is unset: Toxiproxy's own default port.
	DefaultURL = "http://127.0.0.1:8474"
)

// FaultMetric is the Counter every injection and removal adds 1 to, tagged
// fault, action, target and name; the harness draws the fault timeline from
// its samples in k6's JSON output.
const FaultMetric = faultevent.MetricName

// RootModule is the global module: one per k6 process. It holds the one
// Toxiproxy client every VU shares, so what setup, fault scenarios and
// teardown add is tracked in one place and cleanup() undoes all of it.
type RootModule struct {
	once   sync.Once
	client *toxiproxy.Client
	err    error
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
func New() *RootModule { return &RootModule{} }

// NewModuleInstance registers the fault metric (once per VU init, which the
// registry deduplicates) and returns the VU's instance.
func (r *RootModule) NewModuleInstance(vu modules.VU) modules.Instance {
	return &ModuleInstance{
		root: r, vu: vu, lookupEnv: vu.InitEnv().LookupEnv,
		events: faultevent.NewRecorder(vu, "toxiproxy"),
	}
}

// clientFor builds the shared client on first use, from the environment the
// harness set, and returns a view of it that reports to this VU.
func (mi *ModuleInstance) clientFor() (*toxiproxy.Client, error) {
	mi.root.once.Do(func() {
		url := DefaultURL
		if mi.lookupEnv != nil {
			if v, ok := mi.lookupEnv(EnvURL); ok && v != "" {
				url = v
			}
		}
		mi.root.client, mi.root.err = toxiproxy.New(url)
	})
	if mi.root.err != nil {
		return nil, mi.root.err
	}
	return mi.root.client.WithRecorder(mi.events), nil
}

// Exports returns the JS API; the default export carries the same functions.
func (mi *ModuleInstance) Exports() modules.Exports {
	named := map[string]any{
		"addToxic":    mi.AddToxic,
		"updateToxic": mi.UpdateToxic,
		"removeToxic": mi.RemoveToxic,
		"disable":     mi.Disable,
		"enable":      mi.Enable,
		"proxies":     mi.Proxies,
		"cleanup":     mi.Cleanup,
		"toxicTypes":  toxiproxy.ToxicTypes,
	}
	return modules.Exports{Default: named, Named: named}
}

// begin returns the call's context, read now (not at init), and the client.
func (mi *ModuleInstance) begin(op string) (context.Context, *toxiproxy.Client, error) {
	if mi.vu.State() == nil {
		return nil, nil, fmt.Errorf("toxiproxy.%s: %w", op, faultevent.ErrInitContext)
	}
	c, err := mi.clientFor()
	if err != nil {
		return nil, nil, fmt.Errorf("toxiproxy.%s: %w", op, err)
	}
	return mi.vu.Context(), c, nil
}

// AddToxic is toxiproxy.addToxic(proxy, {name, type, stream, toxicity, attributes}).
func (mi *ModuleInstance) AddToxic(proxy string, spec sobek.Value) (map[string]any, error) {
	ctx, c, err := mi.begin("addToxic")
	if err != nil {
		return nil, err
	}
	t, err := parseToxic(mi.vu.Runtime(), spec)
	if err != nil {
		return nil, fmt.Errorf("toxiproxy.addToxic(%q): %w", proxy, err)
	}
	got, err := c.AddToxic(ctx, proxy, t)
	if err != nil {
		return nil, err
	}
	return toxicToJS(got), nil
}

// UpdateToxic is toxiproxy.updateToxic(proxy, name, {toxicity, attributes}).
func (mi *ModuleInstance) UpdateToxic(proxy, name string, spec sobek.Value) (map[string]any, error) {
	ctx, c, err := mi.begin("updateToxic")
	if err != nil {
		return nil, err
	}
	u, err := parseUpdate(mi.vu.Runtime(), spec)
	if err != nil {
		return nil, fmt.Errorf("toxiproxy.updateToxic(%q, %q): %w", proxy, name, err)
	}
	got, err := c.UpdateToxic(ctx, proxy, name, u)
	if err != nil {
		return nil, err
	}
	return toxicToJS(got), nil
}

// RemoveToxic is toxiproxy.removeToxic(proxy, name).
func (mi *ModuleInstance) RemoveToxic(proxy, name string) error {
	ctx, c, err := mi.begin("removeToxic")
	if err != nil {
		return err
	}
	return c.RemoveToxic(ctx, proxy, name)
}

// Disable is toxiproxy.disable(proxy): a partition.
func (mi *ModuleInstance) Disable(proxy string) error {
	ctx, c, err := mi.begin("disable")
	if err != nil {
		return err
	}
	return c.Disable(ctx, proxy)
}

// Enable is toxiproxy.enable(proxy).
func (mi *ModuleInstance) Enable(proxy string) error {
	ctx, c, err := mi.begin("enable")
	if err != nil {
		return err
	}
	return c.Enable(ctx, proxy)
}

// Proxies is toxiproxy.proxies(): every proxy with its toxics.
func (mi *ModuleInstance) Proxies() ([]map[string]any, error) {
	ctx, c, err := mi.begin("proxies")
	if err != nil {
		return nil, err
	}
	ps, err := c.Proxies(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(ps))
	for _, p := range ps {
		toxics := make([]map[string]any, 0, len(p.Toxics))
		for _, t := range p.Toxics {
			toxics = append(toxics, toxicToJS(t))
		}
		out = append(out, map[string]any{
			"name": p.Name, "listen": p.Listen, "upstream": p.Upstream,
			"enabled": p.Enabled, "toxics": toxics,
		})
	}
	return out, nil
}

// Cleanup is toxiproxy.cleanup(): removes every toxic this run added and
// enables every proxy it disabled. Safe to call twice; teardown should call it.
func (mi *ModuleInstance) Cleanup() error {
	ctx, c, err := mi.begin("cleanup")
	if err != nil {
		return err
	}
	return c.Cleanup(ctx)
}

func toxicToJS(t toxiproxy.Toxic) map[string]any {
	tox := 1.0
	if t.Toxicity != nil {
		tox = *t.Toxicity
	}
	attrs := t.Attributes
	if attrs == nil {
		attrs = map[string]any{}
	}
	return map[string]any{
		"name": t.Name, "type": t.Type, "stream": t.Stream,
		"toxicity": tox, "attributes": attrs,
	}
}

// toxicOptions are addToxic's options. Its fields are toxiproxy.Toxic's,
// so one converts to the other and a change there fails to compile here.
type toxicOptions struct {
	Name       string         `opt:"name"`
	Type       string         `opt:"type,required"`
	Stream     string         `opt:"stream"`
	Toxicity   *float64       `opt:"toxicity"`
	Attributes map[string]any `opt:"attributes"`
}

// parseToxic reads a toxic spec strictly: an unknown key is an error, so a
// misspelt option fails the drill instead of being ignored.
func parseToxic(rt *sobek.Runtime, v sobek.Value) (toxiproxy.Toxic, error) {
	var o toxicOptions
	err := jsopt.Decode(rt, v, &o)
	return toxiproxy.Toxic(o), err
}

// updateOptions are updateToxic's options, toxiproxy.Update's fields.
type updateOptions struct {
	Toxicity   *float64       `opt:"toxicity"`
	Attributes map[string]any `opt:"attributes"`
}

func parseUpdate(rt *sobek.Runtime, v sobek.Value) (toxiproxy.Update, error) {
	var o updateOptions
	err := jsopt.Decode(rt, v, &o)
	return toxiproxy.Update(o), err
}
