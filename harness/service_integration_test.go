//go:build integration

package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
)

// The output of a service's container that exited at once (the example
// service without its settings) is read by its run's labels, as Run saves
// it for a release whose StartApp failed before returning it.
func TestAppLogsOfAnExitedContainerByLabel(t *testing.T) {
	runID := environments.NewRunID()
	service := environments.AppService(ReleaseApp)
	name := runID + "-" + service
	out, err := exec.Command("docker", "run", "-d", "--name", name,
		"--label", environments.LabelRun+"="+runID, "--label", environments.LabelService+"="+service,
		environments.ExampleAppImage("v1")).CombinedOutput()
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	_ = exec.Command("docker", "wait", name).Run()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	saveAppLogs(ctx, os.Stderr, dir, runID, []string{ReleaseApp}, nil)
	b, err := os.ReadFile(filepath.Join(dir, "app-app.log"))
	if err != nil || !strings.Contains(string(b), "DB_DSN is empty") {
		t.Errorf("app-app.log = %q, %v; want the service's error", b, err)
	}
	if strings.ContainsRune(string(b), 0) || strings.ContainsRune(string(b), 1) {
		t.Errorf("app-app.log holds Docker's stream headers: %q", b)
	}
	// Another run's container is not this one.
	other := t.TempDir()
	saveAppLogs(ctx, os.Stderr, other, environments.NewRunID(), []string{ReleaseApp}, nil)
	if _, err := os.Stat(filepath.Join(other, "app-app.log")); !os.IsNotExist(err) {
		t.Errorf("logs of a run without a container: %v", err)
	}
}
