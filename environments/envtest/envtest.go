// Package envtest runs a package's integration tests against one firedrill
// environment: TestMain starts it, every test of the package shares it, and
// it is removed when they end, whatever happened.
//
//	var env *environments.Env
//
//	func TestMain(m *testing.M) {
//		envtest.Main(m, func(e *environments.Env) { env = e }, environments.WithMemcached(2))
//	}
//
// Without Docker or the firedrill images the tests fail, never skip.
package envtest

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
)

// UpTimeout bounds how long the environment may take to come up.
const UpTimeout = 5 * time.Minute

// TestingM is what Run needs of *testing.M.
type TestingM interface {
	Run() int
}

// Run starts an environment with opts, hands it to use (which may be nil),
// runs the tests and removes the environment. It returns the exit code for
// os.Exit: m.Run's, or 1 when the environment did not come up, in which
// case no test runs.
func Run(m TestingM, use func(*environments.Env), opts ...environments.Option) int {
	ctx, cancel := context.WithTimeout(context.Background(), UpTimeout)
	defer cancel()
	env, err := environments.Up(ctx, opts...)
	if env != nil {
		defer func() {
			if err := env.Down(context.Background()); err != nil {
				fmt.Fprintf(os.Stderr, "envtest: environment down: %v\n", err)
			}
		}()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: environment up (Docker required): %v\n", err)
		return 1
	}
	if use != nil {
		use(env)
	}
	return m.Run()
}

// Main is a whole TestMain: os.Exit(Run(m, use, opts...)).
func Main(m TestingM, use func(*environments.Env), opts ...environments.Option) {
	os.Exit(Run(m, use, opts...))
}
