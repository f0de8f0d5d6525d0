package environments

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Labels carried by every container and network the harness creates.
const (
	LabelRun     = "firedrill.run"     // the run id
	LabelService = "firedrill.service" // mysql, memcached-N, toxiproxy, network
	LabelPID     = "firedrill.pid"     // the process that owns the run
	LabelStarted = "firedrill.pid-start"
	LabelHost    = "firedrill.host"
)

// NewRunID returns a fresh run id: sortable by time, unique by a random tail.
func NewRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "fd-" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// Labels are the labels of one resource of run. They record the owning
// process so a later run can tell a live environment from one whose process
// was killed.
func Labels(runID, service string) map[string]string {
	host, _ := os.Hostname()
	return map[string]string{
		LabelRun:     runID,
		LabelService: service,
		LabelPID:     strconv.Itoa(os.Getpid()),
		LabelStarted: processStart(os.Getpid()),
		LabelHost:    host,
	}
}

// processStart is the start time of pid in clock ticks since boot (field 22
// of /proc/PID/stat), which tells a live owner from a reused pid.
func processStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	// The command name may hold spaces; fields start after its ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// ownerAlive reports whether the process recorded in labels still runs.
// Resources of another host are assumed alive: their owner cannot be seen.
func ownerAlive(labels map[string]string) bool {
	host, _ := os.Hostname()
	if h := labels[LabelHost]; h != "" && h != host {
		return true
	}
	pid, err := strconv.Atoi(labels[LabelPID])
	if err != nil || pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && errors.Is(err, syscall.ESRCH) {
		return false
	}
	if want := labels[LabelStarted]; want != "" && processStart(pid) != want {
		return false
	}
	return true
}

func dockerClient(ctx context.Context) (*testcontainers.DockerClient, error) {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w (is the Docker engine running? try `docker info`)", err)
	}
	return cli, nil
}

// Reap removes the containers and networks of runs whose owning process is
// gone (killed with SIGKILL, crashed). It returns how many it removed.
func Reap(ctx context.Context) (int, error) {
	return removeWhere(ctx, "", func(l map[string]string) bool { return !ownerAlive(l) })
}

// RemoveRun removes every container and network labelled with runID.
func RemoveRun(ctx context.Context, runID string) (int, error) {
	return removeWhere(ctx, runID, func(map[string]string) bool { return true })
}

// RemoveAll removes every firedrill environment on this Docker engine,
// including those of live runs (`firedrill env down`).
func RemoveAll(ctx context.Context) (int, error) {
	return removeWhere(ctx, "", func(map[string]string) bool { return true })
}

// Runs lists the run ids that have containers or networks.
func Runs(ctx context.Context) ([]string, error) {
	cli, err := dockerClient(ctx)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	seen := map[string]bool{}
	var ids []string
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", LabelRun)})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs.Items {
		if id := c.Labels[LabelRun]; !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func removeWhere(ctx context.Context, runID string, match func(map[string]string) bool) (int, error) {
	cli, err := dockerClient(ctx)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	filter := LabelRun
	if runID != "" {
		filter = LabelRun + "=" + runID
	}
	n := 0
	var errs []error
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", filter)})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs.Items {
		if !match(c.Labels) {
			continue
		}
		if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID[:12], err))
			continue
		}
		n++
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("label", filter)})
	if err != nil {
		return n, fmt.Errorf("list networks: %w", err)
	}
	for _, nw := range ns.Items {
		if !match(nw.Labels) {
			continue
		}
		if _, err := cli.NetworkRemove(ctx, nw.ID, client.NetworkRemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", nw.Name, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func isNotFound(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such")
}
