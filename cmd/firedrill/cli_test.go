package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firedrill-dev/firedrill/harness"
)

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runMain(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestUnknownDrillIsOneClearError(t *testing.T) {
	_, _, err := run(t, "run", "no-such-drill", "--scenarios", "../../scenarios")
	if err == nil {
		t.Fatal("want an error")
	}
	msg := err.Error()
	if !strings.Contains(msg, `unknown drill "no-such-drill"`) || !strings.Contains(msg, "pipeline") || strings.Count(msg, "\n") > 0 {
		t.Errorf("error = %q", msg)
	}
	if code := exitCode(err, &bytes.Buffer{}); code == 0 {
		t.Error("exit code 0 for an unknown drill")
	}
}

func TestUnknownCommandAndFlag(t *testing.T) {
	if _, _, err := run(t, "explode"); err == nil || !strings.Contains(err.Error(), `unknown command "explode"`) {
		t.Errorf("unknown command: %v", err)
	}
	_, stderr, err := run(t, "run", "pipeline", "--no-such-flag")
	if !errors.Is(err, errUsage) || !strings.Contains(stderr, "no-such-flag") {
		t.Errorf("unknown flag: err=%v stderr=%q", err, stderr)
	}
	if code := exitCode(err, &bytes.Buffer{}); code != 2 {
		t.Errorf("exit code %d for an unknown flag, want 2", code)
	}
}

func TestBadRunInputs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "pipeline", "--scenarios", "../../scenarios", "--profile", "bogus"}, `no profile "bogus"`},
		{[]string{"run", "pipeline", "--scenarios", "../../scenarios", "--set", "novalue"}, `bad --set "novalue"`},
		{[]string{"run", "pipeline", "--scenarios", "../../scenarios", "--memcached", "0"}, "--memcached must be at least 1"},
		{[]string{"run", "pipeline", "--scenarios", "../../scenarios", "--short"}, "pipeline has no @nightly line"},
		{[]string{"run"}, "exactly one drill"},
		{[]string{"env"}, "env needs a subcommand"},
		// sweep: every argument checked before Docker is asked anything
		{[]string{"sweep", "pipeline", "--scenarios", "../../scenarios"}, "no --vary"},
		{[]string{"sweep", "nosuch", "--scenarios", "../../scenarios", "--vary", "rate=1"}, `unknown drill "nosuch"`},
		{[]string{"sweep", "pipeline", "--scenarios", "../../scenarios", "--vary", "rte=1,2"}, `no parameter "rte"`},
		{[]string{"sweep", "pipeline", "--scenarios", "../../scenarios", "--vary", "rate=fast"}, "rate"},
		{[]string{"sweep", "pipeline", "--scenarios", "../../scenarios", "--vary", "rate"}, "want name=v1,v2"},
		{[]string{"sweep", "pipeline", "--scenarios", "../../scenarios", "--vary", "rate=1", "--profile", "gentle"}, `no profile "gentle"`},
		{[]string{"sweep", "pipeline", "--scenarios", "../../scenarios", "--vary", "rate=1", "--short"}, "no @nightly short form"},
		{[]string{"sweep", "pipeline", "--scenarios", "../../scenarios", "--vary", "rate=1", "--repeats", "0"}, "--repeats must be at least 1"},
		{[]string{"sweep", "app-slow-database", "--scenarios", "../../scenarios", "--vary", "rate=1"}, "drives a service under test"},
		{[]string{"sweep", "--scenarios", "../../scenarios", "--vary", "rate=1"}, "exactly one drill"},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to say %q", tc.args, err, tc.want)
		}
	}
}

func TestListShowsEveryDrill(t *testing.T) {
	out, _, err := run(t, "list", "--scenarios", "../../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "pipeline") || !strings.Contains(out, "default=held") {
		t.Errorf("list = %q", out)
	}
}

func TestHelpNamesEveryCommand(t *testing.T) {
	out, _, err := run(t, "help")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"list", "run DRILL", "env up", "env down", "images", "report", "compare", "sweep DRILL", "fidelity", "version"} {
		if !strings.Contains(out, c) {
			t.Errorf("help lacks %q", c)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := newTestFlagSet()
	p := fs.String("profile", "", "")
	pos, err := parseInterspersed(fs, []string{"drill", "--profile", "x", "--", "--not-a-flag"})
	if err != nil || *p != "x" || strings.Join(pos, " ") != "drill --not-a-flag" {
		t.Errorf("pos=%v profile=%q err=%v", pos, *p, err)
	}
}

func newTestFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	return fs
}

// merge reads the one sampler file of a run among its generators'
// folders; two are two runs.
func TestServersFile(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if err := os.WriteFile(filepath.Join(dir, harness.ServersFile), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := serversFile([]string{a, c}); err != nil || got != filepath.Join(a, harness.ServersFile) {
		t.Errorf("one sampler file: %q, %v", got, err)
	}
	if got, err := serversFile([]string{c}); err != nil || got != "" {
		t.Errorf("none: %q, %v; want \"\" (not sampled)", got, err)
	}
	if _, err := serversFile([]string{a, b}); err == nil || !strings.Contains(err.Error(), "one run has one") {
		t.Errorf("two sampler files: %v, want an error", err)
	}
}

// The service under test's arguments are checked before Docker is asked
// anything: each mistake is one error naming it, and a bad-argument exit.
func TestServiceArgumentsAreCheckedFirst(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "pipeline", "--app", "team/api:1"}, "pipeline drives firedrill's own traffic engine and takes no service under test"},
		{[]string{"run", "hot-key-expiry", "--seed-sql", "x.sql"}, "takes no service under test"},
		{[]string{"run", "app-cache-unreachable"}, "app-cache-unreachable drives a service under test, and none is given"},
		{[]string{"run", "app-cache-unreachable", "--app", "team/api:1", "--app-env", "DSN={{postgres.dsn}}"}, "unknown endpoint {{postgres.dsn}}"},
		{[]string{"run", "app-format-deploy", "--app", "team/api:1"}, "rolling deploy from one release to another: give both"},
		{[]string{"run", "app-cache-unreachable", "--app", "base=team/api:1", "--app", "head=team/api:2"}, "drives one release"},
		{[]string{"run", "app-cache-unreachable", "--config", "no-such.yaml"}, "no-such.yaml"},
	} {
		_, _, err := run(t, append(tc.args, "--scenarios", "../../scenarios", "--k6", "/bin/true")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to say %q", tc.args, err, tc.want)
			continue
		}
		if code := exitCode(err, &bytes.Buffer{}); code != 2 {
			t.Errorf("%v: exit %d, want 2 (a bad argument)", tc.args, code)
		}
	}
}

func TestNightlyServiceArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nightly", "--app", "team/api:1", "--drills", "hot-key-expiry"}, "none of the drills to run drives a service under test: drop --app"},
		{[]string{"nightly", "--app", "team/api:1", "--drills", "app-format-deploy"}, "rolling deploy and the service has one release"},
		{[]string{"nightly", "--drills", "app-slow-database"}, "no service under test"},
		{[]string{"nightly", "--app", "team/api:1", "--app-env", "X={{nope}}"}, "unknown endpoint {{nope}}"},
	} {
		_, _, err := run(t, append(tc.args, "--scenarios", "../../scenarios", "--k6", "/bin/true", "--out", t.TempDir())...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to say %q", tc.args, err, tc.want)
		}
	}
}
