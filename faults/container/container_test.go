package container

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// listOnly answers ContainerList with fixed items; any other call fails the
// test, which proves a refused target is never touched.
type listOnly struct {
	Engine
	t     *testing.T
	items []container.Summary
}

func (l listOnly) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	return client.ContainerListResult{Items: l.items}, nil
}

func (l listOnly) ContainerStop(context.Context, string, client.ContainerStopOptions) (client.ContainerStopResult, error) {
	l.t.Fatal("stop reached the engine")
	return client.ContainerStopResult{}, nil
}

func TestRefusesContainersOfOtherRuns(t *testing.T) {
	if _, err := New(""); err == nil {
		t.Fatal("empty run id accepted")
	}
	// An engine that ignores the filter and returns another run's container.
	eng := listOnly{t: t, items: []container.Summary{{ID: "x", Labels: map[string]string{LabelRun: "other", LabelService: "mysql"}}}}
	in, err := New("mine", WithEngine(eng))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := in.Stop(ctx, "mysql", 0); err == nil || !strings.Contains(err.Error(), "no container") {
		t.Fatalf("other run's container: %v", err)
	}
	if err := in.Stop(ctx, "toxiproxy", 0); err == nil || !strings.Contains(err.Error(), "not a server") {
		t.Fatalf("toxiproxy: %v", err)
	}
	if err := in.Stop(ctx, "", 0); err == nil {
		t.Fatal("empty service accepted")
	}
	two := listOnly{t: t, items: []container.Summary{
		{ID: "a", Labels: map[string]string{LabelRun: "mine", LabelService: "mysql"}},
		{ID: "b", Labels: map[string]string{LabelRun: "mine", LabelService: "mysql"}},
	}}
	in2, _ := New("mine", WithEngine(two))
	if err := in2.Stop(ctx, "mysql", 0); err == nil || !strings.Contains(err.Error(), "2 containers") {
		t.Fatalf("ambiguous: %v", err)
	}
}
