package container

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/firedrill-dev/firedrill/envvar"

	"go.k6.io/k6/v2/js/modules"

	"github.com/firedrill-dev/firedrill/extensions/internal/faultevent"
	fct "github.com/firedrill-dev/firedrill/faults/container"
)

// EnvRunID is the environment variable with the run id whose containers
// this module may act on; without it every call fails.
const EnvRunID = envvar.RunID

// FaultMetric is the Counter every injection and removal adds 1 to, tagged
// fault, action, target and name.
const FaultMetric = faultevent.MetricName

// RootModule holds the one injector (and Docker client) every VU shares.
type RootModule struct {
	once sync.Once
	in   *fct.Injector
	err  error
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

// NewModuleInstance registers the fault metric and returns the VU's instance.
func (r *RootModule) NewModuleInstance(vu modules.VU) modules.Instance {
	return &ModuleInstance{
		root: r, vu: vu, lookupEnv: vu.InitEnv().LookupEnv,
		events: faultevent.NewRecorder(vu, "container"),
	}
}

// Exports returns the JS API; the default export carries the same functions.
func (mi *ModuleInstance) Exports() modules.Exports {
	named := map[string]any{
		"stop":        mi.Stop,
		"kill":        mi.Kill,
		"pause":       mi.Pause,
		"unpause":     mi.Unpause,
		"start":       mi.Start,
		"services":    mi.Services,
		"unreachable": mi.Unreachable,
		"reachable":   mi.Reachable,
		"cleanup":     mi.Cleanup,
	}
	return modules.Exports{Default: named, Named: named}
}

func (mi *ModuleInstance) begin(op string) (context.Context, *fct.Injector, error) {
	if mi.vu.State() == nil {
		return nil, nil, fmt.Errorf("container.%s: %w", op, faultevent.ErrInitContext)
	}
	mi.root.once.Do(func() {
		var run string
		if mi.lookupEnv != nil {
			run, _ = mi.lookupEnv(EnvRunID)
		}
		mi.root.in, mi.root.err = fct.New(run)
	})
	if mi.root.err != nil {
		return nil, nil, fmt.Errorf("container.%s: %w", op, mi.root.err)
	}
	return mi.vu.Context(), mi.root.in.WithRecorder(mi.events), nil
}

// Stop is container.stop(service, graceMs = 0): SIGTERM, SIGKILL after grace.
func (mi *ModuleInstance) Stop(service string, graceMs int) error {
	ctx, in, err := mi.begin("stop")
	if err != nil {
		return err
	}
	if graceMs < 0 {
		return fmt.Errorf("container.stop: negative grace %d", graceMs)
	}
	return in.Stop(ctx, service, time.Duration(graceMs)*time.Millisecond)
}

// Kill is container.kill(service, signal = "SIGKILL").
func (mi *ModuleInstance) Kill(service, signal string) error {
	ctx, in, err := mi.begin("kill")
	if err != nil {
		return err
	}
	return in.Kill(ctx, service, signal)
}

// Pause is container.pause(service).
func (mi *ModuleInstance) Pause(service string) error {
	ctx, in, err := mi.begin("pause")
	if err != nil {
		return err
	}
	return in.Pause(ctx, service)
}

// Unpause is container.unpause(service).
func (mi *ModuleInstance) Unpause(service string) error {
	ctx, in, err := mi.begin("unpause")
	if err != nil {
		return err
	}
	return in.Unpause(ctx, service)
}

// Start is container.start(service): brings a stopped or killed server back.
func (mi *ModuleInstance) Start(service string) error {
	ctx, in, err := mi.begin("start")
	if err != nil {
		return err
	}
	return in.Start(ctx, service)
}

// Unreachable is container.unreachable(service, port, target): every
// packet to port inside service's network namespace is dropped, so
// connects time out (usually service "toxiproxy" and a proxy's listen
// port; target names it on the timeline).
func (mi *ModuleInstance) Unreachable(service string, port int, target string) error {
	ctx, in, err := mi.begin("unreachable")
	if err != nil {
		return err
	}
	return in.Unreachable(ctx, service, port, target)
}

// Reachable is container.reachable(service, port, target): undoes
// unreachable.
func (mi *ModuleInstance) Reachable(service string, port int, target string) error {
	ctx, in, err := mi.begin("reachable")
	if err != nil {
		return err
	}
	return in.Reachable(ctx, service, port, target)
}

// Services is container.services(): [{service, state}] of this run.
func (mi *ModuleInstance) Services() ([]map[string]any, error) {
	ctx, in, err := mi.begin("services")
	if err != nil {
		return nil, err
	}
	cs, err := in.Services(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(cs))
	for _, c := range cs {
		out = append(out, map[string]any{"service": c.Service, "state": c.State, "id": c.ID})
	}
	return out, nil
}

// Cleanup is container.cleanup(): makes reachable, unpauses and starts
// what this run took down. Safe to call twice.
func (mi *ModuleInstance) Cleanup() error {
	ctx, in, err := mi.begin("cleanup")
	if err != nil {
		return err
	}
	return in.Cleanup(ctx)
}
