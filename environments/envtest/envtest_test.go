package envtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firedrill-dev/firedrill/environments"
)

type countingM struct{ runs int }

func (m *countingM) Run() int { m.runs++; return 0 }

// An environment that cannot come up fails the package, saying why, before
// any test runs. (An invalid server count fails before Docker is asked; the
// path where it comes up is what every integration test package exercises.)
func TestRunFailsWithoutAnEnvironment(t *testing.T) {
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	orig := os.Stderr
	os.Stderr = stderr
	defer func() { os.Stderr = orig }()

	m := &countingM{}
	used := false
	code := Run(m, func(*environments.Env) { used = true }, environments.WithMemcached(0))
	if code != 1 || m.runs != 0 || used {
		t.Fatalf("exit code %d, tests run %d times, environment used %v; want 1, 0, false", code, m.runs, used)
	}
	out, _ := os.ReadFile(stderr.Name())
	if !strings.HasPrefix(string(out), "FAIL: environment up") || !strings.Contains(string(out), "memcached servers") {
		t.Errorf("stderr %q, want the reason", out)
	}
}
