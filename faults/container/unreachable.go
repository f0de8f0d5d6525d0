package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/firedrill-dev/firedrill/faults"
)

// FaultUnreachable is the timeline's kind for a port that drops every
// packet sent to it (Unreachable).
const FaultUnreachable = "unreachable"

// ruleComment tags the rules this package adds, so that removing one never
// touches a rule somebody else put in the namespace.
const ruleComment = "firedrill-unreachable"

// netfilterService is the firedrill.service label of the short-lived
// containers that change a namespace's rules.
const netfilterService = "netfilter"

// imageFrom is the service whose image runs the rule changes: a run's
// memcached servers are built on the Debian base, which carries iptables;
// Toxiproxy's image is a static binary on scratch.
const imageFrom = "memcached-0"

// Unreachable makes every packet sent to port inside service's network
// namespace vanish, the way a security group that does not admit a fleet
// drops its SYNs: a client's connect waits its own timeout (no refusal, no
// reset) and an open connection goes silent. service is normally
// "toxiproxy" and port the listen port of the proxy in front of the
// dependency to cut off, so every other proxy keeps working. The rule is
// an iptables DROP added by a short-lived container that shares the
// namespace (NET_ADMIN), so the rule goes when the namespace does, even
// if nothing removes it. Reported as unreachable inject on target (the
// proxy's name) as it starts, and removed again if it fails; Reachable
// removes it.
func (in *Injector) Unreachable(ctx context.Context, service string, port int, target string) error {
	if err := checkPort(port); err != nil {
		return err
	}
	// Recorded when the change starts, not when its container has exited
	// (0.3-0.4 s later here): the rule takes effect somewhere in between,
	// and the phase before the fault must not hold calls it already cut.
	in.rec.Record(faults.Event{Fault: FaultUnreachable, Action: faults.Inject, Target: target})
	if err := in.netfilter(ctx, service, "-I", port); err != nil {
		in.rec.Record(faults.Event{Fault: FaultUnreachable, Action: faults.Remove, Target: target})
		return fmt.Errorf("container faults: unreachable %s:%d: %w", service, port, err)
	}
	in.st.mu.Lock()
	in.st.dropped[dropKey{service, port}] = target
	in.st.mu.Unlock()
	return nil
}

// Reachable removes what Unreachable added for service's port (every copy
// of the rule, so a repeated Unreachable is undone at once). Reported as
// unreachable remove on target.
func (in *Injector) Reachable(ctx context.Context, service string, port int, target string) error {
	if err := checkPort(port); err != nil {
		return err
	}
	if err := in.netfilter(ctx, service, "-D", port); err != nil {
		return fmt.Errorf("container faults: reachable %s:%d: %w", service, port, err)
	}
	in.st.mu.Lock()
	delete(in.st.dropped, dropKey{service, port})
	in.st.mu.Unlock()
	in.rec.Record(faults.Event{Fault: FaultUnreachable, Action: faults.Remove, Target: target})
	return nil
}

type dropKey struct {
	service string
	port    int
}

func checkPort(port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("container faults: port %d is not a TCP port (1-65535)", port)
	}
	return nil
}

// netfilter runs iptables in service's network namespace from a container
// of this run's image set: op "-I" inserts the DROP rule, "-D" deletes every
// copy of it (a delete of a rule that is not there is not an error).
func (in *Injector) netfilter(ctx context.Context, service, op string, port int) error {
	c, err := in.Find(ctx, service)
	if err != nil {
		return err
	}
	src, err := in.Find(ctx, imageFrom)
	if err != nil {
		return fmt.Errorf("no image with iptables: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	insp, err := in.engine.ContainerInspect(cctx, src.ID, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect %s: %w", imageFrom, err)
	}
	if insp.Container.Config == nil || insp.Container.Config.Image == "" {
		return fmt.Errorf("inspect %s: no image", imageFrom)
	}
	// The run's labels, so a container left behind by a killed harness is
	// removed with the run (firedrill env down, the next run's reaping).
	labels := map[string]string{}
	for k, v := range insp.Container.Config.Labels {
		labels[k] = v
	}
	labels[LabelService] = netfilterService
	rule := "-p tcp --dport " + strconv.Itoa(port) + " -m comment --comment " + ruleComment + " -j DROP"
	script := "iptables -I INPUT " + rule
	if op == "-D" {
		script = "while iptables -D INPUT " + rule + " 2>/dev/null; do :; done; ! iptables -C INPUT " + rule + " 2>/dev/null"
	}
	created, err := in.engine.ContainerCreate(cctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image: insp.Container.Config.Image, Labels: labels,
			Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{script},
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode("container:" + c.ID),
			CapAdd:      []string{"NET_ADMIN"},
		},
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), in.timeout)
		defer rcancel()
		_, _ = in.engine.ContainerRemove(rctx, created.ID, client.ContainerRemoveOptions{Force: true})
	}()
	wait := in.engine.ContainerWait(cctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := in.engine.ContainerStart(cctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	select {
	case err := <-wait.Error:
		return fmt.Errorf("wait: %w", err)
	case res := <-wait.Result:
		if res.StatusCode != 0 {
			return fmt.Errorf("iptables exited %d: %s (the image needs iptables and the engine NET_ADMIN: rebuild with `make images`)",
				res.StatusCode, in.output(ctx, created.ID))
		}
	case <-cctx.Done():
		return cctx.Err()
	}
	return nil
}

// output is the last lines a container printed, for an error message.
func (in *Injector) output(ctx context.Context, id string) string {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.timeout)
	defer cancel()
	res, err := in.engine.ContainerLogs(lctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "5"})
	if err != nil {
		return "no output: " + err.Error()
	}
	defer res.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, io.LimitReader(res, 4096))
	// the multiplexed stream's 8-byte frame headers are not text
	out := strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' {
			return -1
		}
		return r
	}, b.String())
	return strings.TrimSpace(out)
}

// restoreDropped is Cleanup's part: every port this injector made
// unreachable is made reachable again.
func (in *Injector) restoreDropped(ctx context.Context) error {
	in.st.mu.Lock()
	keys := make([]dropKey, 0, len(in.st.dropped))
	targets := map[dropKey]string{}
	for k, t := range in.st.dropped {
		keys = append(keys, k)
		targets[k] = t
	}
	in.st.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].service != keys[j].service {
			return keys[i].service < keys[j].service
		}
		return keys[i].port < keys[j].port
	})
	var errs []error
	for _, k := range keys {
		errs = append(errs, in.Reachable(ctx, k.service, k.port, targets[k]))
	}
	return errors.Join(errs...)
}
