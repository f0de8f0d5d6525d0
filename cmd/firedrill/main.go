// Command firedrill replays database and cache incidents as repeatable chaos
// drills: it starts the environment, runs a drill's k6 script against it,
// and writes a result and an HTML report.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `firedrill replays database and cache incidents as repeatable chaos drills.

Usage:
  firedrill list                          list the drills
  firedrill list DRILL                    one drill: its profiles, parameters (name, type, default, per profile) and short form
  firedrill run DRILL [flags]             environment up, run the drill, result + report, environment down
  firedrill env up [--memcached N]        start an environment, print FIREDRILL_* endpoints, stay up until Ctrl-C
  firedrill env down                      remove every firedrill environment on this Docker engine
  firedrill images [--rebuild] [--base IMAGE] | --check
                                          build the database, memcached, toxiproxy and example-service images (offline); --check lists the missing environment images
  firedrill report RESULT.json... -o FILE render results into one HTML report
  firedrill compare BASE... -- HEAD... -o FILE
                                          compare results of two releases; non-zero exit on a regression
  firedrill nightly [flags]               every drill, every profile, repeated; report, comparison with a baseline, JUnit
  firedrill baseline save --release vX.Y [--from DIR] | list
                                          keep a release's results as the baseline of later nightlies
  firedrill sweep DRILL --vary name=v1,v2,... [--vary ...] [--profile P] [--repeats R] [--out DIR]
                                          run a drill over a grid of parameter values; a map of where it recovers (resumable)
  firedrill merge DRILL --out DIR FOLDER...
                                          merge the files of several generators of one run into one result
  firedrill fidelity RESULT.json|DIR... [-o FILE] [--readme README.md]
                                          the incidents' own figures beside the drills' (make fidelity runs every drill at default length first)
  firedrill k8s manifests DRILL --parallelism N --out DIR
                                          k6-operator TestRun, script ConfigMap and k6 image Dockerfile
  firedrill version                       print the version

A drill's parameters are declared in its header (@param); run, nightly, merge
and k8s take --set name=value for them and refuse names the drill does not
declare and values not of their type. Commands that need Docker ping it
first (DOCKER_HOST, or the default socket) and stop at once without it.

Run "firedrill COMMAND -h" for a command's flags.
`

// errUsage is bad input already explained on stderr.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal the run tears down; a second one should
		// not be swallowed, so give signals back to the default handler.
		<-ctx.Done()
		stop()
	}()
	err := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// Exit codes of run, merge and nightly (documented in the README).
const (
	exitMissed  = 1 // a profile reached a verdict other than the one it declares (and every other failure)
	exitUsage   = 2 // bad flags or arguments
	exitInvalid = 3 // a precondition failed: the run proves nothing
	exitError   = 4 // a run could not decide: setup failure, script error, crash, interrupt, timeout
)

// exitErr is an error with its own exit code.
type exitErr struct {
	code int
	msg  string
}

func (e *exitErr) Error() string { return e.msg }

// badArg is a bad argument found after flag parsing (an unknown drill or
// profile, a --set the drill does not declare): one line, exit 2.
func badArg(err error) error {
	return &exitErr{code: exitUsage, msg: err.Error()}
}

// noDocker is an unreachable Docker engine: nothing ran, and the run could
// not decide (4).
func noDocker(err error) error {
	return &exitErr{code: exitError, msg: err.Error()}
}

func exitCode(err error, stderr io.Writer) int {
	var ee *exitErr
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.As(err, &ee):
		fmt.Fprintf(stderr, "firedrill: %v\n", err)
		return ee.code
	default:
		fmt.Fprintf(stderr, "firedrill: %v\n", err)
		return 1
	}
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "list":
		return listCmd(ctx, rest, stdout, stderr)
	case "run":
		return runCmd(ctx, rest, stdout, stderr)
	case "env":
		return envCmd(ctx, rest, stdout, stderr)
	case "images":
		return imagesCmd(ctx, rest, stdout, stderr)
	case "report":
		return reportCmd(ctx, rest, stdout, stderr)
	case "compare":
		return compareCmd(ctx, rest, stdout, stderr)
	case "nightly":
		return nightlyCmd(ctx, rest, stdout, stderr)
	case "baseline":
		return baselineCmd(ctx, rest, stdout, stderr)
	case "merge":
		return mergeCmd(ctx, rest, stdout, stderr)
	case "fidelity":
		return fidelityCmd(ctx, rest, stdout, stderr)
	case "sweep":
		return sweepCmd(ctx, rest, stdout, stderr)
	case "k8s":
		return k8sCmd(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "firedrill", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q: run `firedrill help` for the commands (%s)", cmd,
			"list, run, env, images, report, compare, nightly, baseline, sweep, merge, fidelity, k8s, version")
	}
}

// parseInterspersed parses flags that may come before or after positional
// arguments (`run DRILL --profile protected`), which flag.Parse alone stops
// at. "--" ends flag parsing; what follows is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
