// Package container injects faults into the servers of a firedrill run by
// acting on their containers through the Docker Engine API: stop, kill,
// pause, and bring them back.
//
// A target is named by its firedrill.service label (mysql, memcached-0, ...)
// and must also carry firedrill.run=<this run's id>: the injector refuses
// every container that does not, so a fault can never reach another run's
// environment or anything else on the machine.
//
// Traffic reaches servers through Toxiproxy by network alias, so a restarted
// container is found again by its proxy. Its directly published host port
// may change on restart: direct addresses (such as the admin DSN) taken
// before a stop can go stale; Injector.HostPort reports the new one.
package container

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/firedrill-dev/firedrill/faults"
)

// Labels the harness puts on every container of a run.
const (
	LabelRun     = "firedrill.run"
	LabelService = "firedrill.service"
)

// Fault kinds reported on the timeline.
const (
	FaultStop  = "container_stop"
	FaultPause = "container_pause"
	FaultKill  = "container_kill"
)

// DefaultTimeout bounds each Docker API call (a stop includes its grace
// period on top).
const DefaultTimeout = 30 * time.Second

// Engine is the part of the Docker Engine API the injector uses;
// *client.Client implements it.
type Engine interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerStop(ctx context.Context, id string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerKill(ctx context.Context, id string, options client.ContainerKillOptions) (client.ContainerKillResult, error)
	ContainerPause(ctx context.Context, id string, options client.ContainerPauseOptions) (client.ContainerPauseResult, error)
	ContainerUnpause(ctx context.Context, id string, options client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error)
	ContainerStart(ctx context.Context, id string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	// for Unreachable's short-lived rule changers
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerWait(ctx context.Context, id string, options client.ContainerWaitOptions) client.ContainerWaitResult
	ContainerLogs(ctx context.Context, id string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	ContainerRemove(ctx context.Context, id string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
}

var _ Engine = (*client.Client)(nil)

// Option configures an Injector.
type Option func(*Injector)

// WithTimeout bounds each Docker API call (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(i *Injector) { i.timeout = d } }

// WithRecorder sets where timeline events go (default faults.Discard).
func WithRecorder(r faults.Recorder) Option { return func(i *Injector) { i.rec = r } }

// WithEngine uses e instead of a client built from the environment
// (DOCKER_HOST and friends).
func WithEngine(e Engine) Option { return func(i *Injector) { i.engine = e } }

// Injector acts on the containers of one run. Safe for concurrent use;
// WithRecorder copies share what was stopped and paused.
type Injector struct {
	runID   string
	engine  Engine
	timeout time.Duration
	rec     faults.Recorder
	st      *state
}

type state struct {
	mu sync.Mutex
	// down maps a service to the fault that took it down (stop or kill),
	// paused holds paused services: what Cleanup brings back.
	down   map[string]string
	paused map[string]bool
	// dropped maps a port Unreachable cut off to its target's name.
	dropped map[dropKey]string
}

// Container is a target as the Engine reports it.
type Container struct {
	ID      string
	Service string
	State   string // running, paused, exited, ...
}

// New returns an injector for the containers labelled firedrill.run=runID.
func New(runID string, opts ...Option) (*Injector, error) {
	if runID == "" {
		return nil, errors.New("container faults: no run id (FIREDRILL_RUN_ID): refusing to act on unlabelled containers")
	}
	in := &Injector{runID: runID, timeout: DefaultTimeout, rec: faults.Discard,
		st: &state{down: map[string]string{}, paused: map[string]bool{}, dropped: map[dropKey]string{}}}
	for _, o := range opts {
		o(in)
	}
	if in.engine == nil {
		c, err := client.New(client.FromEnv)
		if err != nil {
			return nil, fmt.Errorf("container faults: docker client: %w", err)
		}
		in.engine = c
	}
	return in, nil
}

// WithRecorder returns an injector reporting to r that shares in's state.
func (in *Injector) WithRecorder(r faults.Recorder) *Injector {
	cp := *in
	cp.rec = r
	return &cp
}

// Find returns the one container of this run with the service label. The
// labels are checked again on the answer, not only trusted to the filter.
func (in *Injector) Find(ctx context.Context, service string) (Container, error) {
	if service == "" {
		return Container{}, errors.New("container faults: missing service name")
	}
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	f := client.Filters{}
	f.Add("label", LabelRun+"="+in.runID)
	f.Add("label", LabelService+"="+service)
	res, err := in.engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return Container{}, fmt.Errorf("container faults: list %q: %w", service, err)
	}
	var found []Container
	for _, c := range res.Items {
		if c.Labels[LabelRun] != in.runID || c.Labels[LabelService] != service {
			continue
		}
		found = append(found, Container{ID: c.ID, Service: service, State: string(c.State)})
	}
	switch len(found) {
	case 0:
		return Container{}, fmt.Errorf("container faults: no container with %s=%s and %s=%s", LabelService, service, LabelRun, in.runID)
	case 1:
		return found[0], nil
	default:
		return Container{}, fmt.Errorf("container faults: %d containers with %s=%s in run %s", len(found), LabelService, service, in.runID)
	}
}

// Services lists the services of this run, sorted.
func (in *Injector) Services(ctx context.Context) ([]Container, error) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	f := client.Filters{}
	f.Add("label", LabelRun+"="+in.runID)
	res, err := in.engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("container faults: list: %w", err)
	}
	var out []Container
	for _, c := range res.Items {
		if c.Labels[LabelRun] == in.runID && c.Labels[LabelService] != "" {
			out = append(out, Container{ID: c.ID, Service: c.Labels[LabelService], State: string(c.State)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out, nil
}

// target finds a server container; Toxiproxy is not a server and taking it
// down would cut every server at once, which a partition per proxy models.
func (in *Injector) target(ctx context.Context, service string) (Container, error) {
	if service == "toxiproxy" {
		return Container{}, errors.New("container faults: toxiproxy is not a server target (use toxiproxy.disable for partitions)")
	}
	return in.Find(ctx, service)
}

// Stop stops a server's container: SIGTERM, then SIGKILL after grace
// (0 = at once). Reported as container_stop inject; Start removes it.
func (in *Injector) Stop(ctx context.Context, service string, grace time.Duration) error {
	c, err := in.target(ctx, service)
	if err != nil {
		return err
	}
	secs := int(grace.Round(time.Second) / time.Second)
	cctx, cancel := context.WithTimeout(ctx, in.timeout+grace)
	defer cancel()
	if _, err := in.engine.ContainerStop(cctx, c.ID, client.ContainerStopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("container faults: stop %s: %w", service, err)
	}
	in.markDown(service, FaultStop)
	return nil
}

// Kill sends signal (default SIGKILL) to a server's container. Reported as
// container_kill inject; Start removes it.
func (in *Injector) Kill(ctx context.Context, service, signal string) error {
	c, err := in.target(ctx, service)
	if err != nil {
		return err
	}
	if signal == "" {
		signal = "SIGKILL"
	}
	cctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	if _, err := in.engine.ContainerKill(cctx, c.ID, client.ContainerKillOptions{Signal: signal}); err != nil {
		return fmt.Errorf("container faults: kill %s: %w", service, err)
	}
	// A signal that does not end the process (SIGHUP, ...) is still the
	// fault the drill asked for; Start is then a no-op for a running
	// container.
	in.markDown(service, FaultKill)
	return nil
}

func (in *Injector) markDown(service, fault string) {
	in.st.mu.Lock()
	in.st.down[service] = fault
	in.st.mu.Unlock()
	in.rec.Record(faults.Event{Fault: fault, Action: faults.Inject, Target: service})
}

// Start starts a stopped or killed server's container again and waits until
// the engine reports it running (not until the service answers: that is the
// caller's readiness check). Reported as the remove of the fault that took
// it down (container_stop when this injector did not).
func (in *Injector) Start(ctx context.Context, service string) error {
	c, err := in.target(ctx, service)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	if c.State != "running" {
		if _, err := in.engine.ContainerStart(cctx, c.ID, client.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("container faults: start %s: %w", service, err)
		}
		if err := in.waitState(cctx, c.ID, func(s string) bool { return s == "running" }); err != nil {
			return fmt.Errorf("container faults: start %s: %w", service, err)
		}
	}
	in.st.mu.Lock()
	fault, ok := in.st.down[service]
	delete(in.st.down, service)
	in.st.mu.Unlock()
	if !ok {
		fault = FaultStop
	}
	in.rec.Record(faults.Event{Fault: fault, Action: faults.Remove, Target: service})
	return nil
}

// Pause freezes a server's processes (cgroup freezer): connections stay
// open but nothing answers, like a stalled host. Reported as
// container_pause inject.
func (in *Injector) Pause(ctx context.Context, service string) error {
	c, err := in.target(ctx, service)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	if _, err := in.engine.ContainerPause(cctx, c.ID, client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("container faults: pause %s: %w", service, err)
	}
	in.st.mu.Lock()
	in.st.paused[service] = true
	in.st.mu.Unlock()
	in.rec.Record(faults.Event{Fault: FaultPause, Action: faults.Inject, Target: service})
	return nil
}

// Unpause thaws a paused server. Reported as container_pause remove.
func (in *Injector) Unpause(ctx context.Context, service string) error {
	c, err := in.target(ctx, service)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	if c.State == "paused" {
		if _, err := in.engine.ContainerUnpause(cctx, c.ID, client.ContainerUnpauseOptions{}); err != nil {
			return fmt.Errorf("container faults: unpause %s: %w", service, err)
		}
	}
	in.st.mu.Lock()
	delete(in.st.paused, service)
	in.st.mu.Unlock()
	in.rec.Record(faults.Event{Fault: FaultPause, Action: faults.Remove, Target: service})
	return nil
}

// HostPort returns the 127.0.0.1 host port published for a container port
// such as "3306/tcp": it can change when a container is restarted.
func (in *Injector) HostPort(ctx context.Context, service, port string) (string, error) {
	c, err := in.Find(ctx, service)
	if err != nil {
		return "", err
	}
	cctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	res, err := in.engine.ContainerInspect(cctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("container faults: inspect %s: %w", service, err)
	}
	if res.Container.NetworkSettings == nil {
		return "", fmt.Errorf("container faults: %s has no network settings", service)
	}
	for p, bindings := range res.Container.NetworkSettings.Ports {
		if p.String() != port {
			continue
		}
		for _, b := range bindings {
			if b.HostPort != "" {
				return b.HostPort, nil
			}
		}
	}
	return "", fmt.Errorf("container faults: %s publishes no %s", service, port)
}

func (in *Injector) waitState(ctx context.Context, id string, ok func(string) bool) error {
	for i := 0; i < 1000; i++ {
		res, err := in.engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return err
		}
		if res.Container.State != nil && ok(strings.ToLower(string(res.Container.State.Status))) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("container did not reach the expected state")
}

// Cleanup makes reachable what this injector made unreachable, unpauses
// what it paused and starts what it stopped or killed. It runs even when ctx is cancelled; safe to call twice.
func (in *Injector) Cleanup(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	in.st.mu.Lock()
	var paused, down []string
	for s := range in.st.paused {
		paused = append(paused, s)
	}
	for s := range in.st.down {
		down = append(down, s)
	}
	in.st.mu.Unlock()
	sort.Strings(paused)
	sort.Strings(down)
	errs := []error{in.restoreDropped(ctx)}
	for _, s := range paused {
		errs = append(errs, in.Unpause(ctx, s))
	}
	for _, s := range down {
		errs = append(errs, in.Start(ctx, s))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("container faults cleanup: %w", err)
	}
	return nil
}
