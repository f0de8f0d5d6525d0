package environments

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A DOCKER_HOST with no engine behind it is reported at once, by the
// endpoint, and is not silently replaced by the default socket.
func TestCheckDockerNamesAnUnreachableDockerHost(t *testing.T) {
	const host = "unix:///nonexistent-firedrill-test.sock"
	t.Setenv("DOCKER_HOST", host)
	start := time.Now()
	err := CheckDocker(context.Background())
	if err == nil {
		t.Fatal("no error for a DOCKER_HOST with no engine")
	}
	for _, want := range []string{host + " (DOCKER_HOST)", "no such file or directory", "unset DOCKER_HOST"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if took := time.Since(start); took > pingTimeout {
		t.Errorf("took %s", took)
	}
}
