package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// noEngine points the Docker client at a socket that does not exist, so
// that a test that got past the checks by mistake starts nothing.
const noEngine = "unix:///nonexistent-firedrill-test.sock"

// fakeK6 is a file where --k6 wants one: these tests never run it.
func fakeK6(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k6")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// A --set the drill does not declare, or of the wrong type, is one line
// naming the parameter, the ones the drill takes and their types; exit 2;
// and it is found before Docker is asked anything.
func TestSetIsCheckedAgainstTheDeclarations(t *testing.T) {
	t.Setenv("DOCKER_HOST", noEngine)
	k6 := fakeK6(t)
	out := t.TempDir()
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "ddl-storm", "--set", "nosuch=1"},
			[]string{`drill ddl-storm has no parameter "nosuch"`, "duration (number)", "concurrency (number)", "firedrill list ddl-storm"}},
		{[]string{"run", "ddl-storm", "--set", "rate=abc"}, []string{`rate is a number, got "abc"`}},
		{[]string{"run", "hot-key-expiry", "--short", "--set", "judge=leases", "--set", "ttl=soon"}, []string{`ttl is a number, got "soon"`}},
		{[]string{"merge", "ddl-storm", "--profile", "protected", "--out", out, "--set", "nosuch=1", out}, []string{`no parameter "nosuch"`}},
		{[]string{"merge", "ddl-storm", "--profile", "bogus", "--out", out, out}, []string{`no profile "bogus"`}},
		{[]string{"k8s", "manifests", "ddl-storm", "--set", "storm=long"}, []string{`storm is a number, got "long"`}},
		{[]string{"nightly", "--set", "nosuch=1"}, []string{`no drill of this nightly has a parameter "nosuch"`, "judge (string)", "rate (number)"}},
		{[]string{"nightly", "--drills", "pipeline", "--set", "duration=x"}, []string{`duration is a number, got "x"`}},
		{[]string{"list", "no-such-drill"}, []string{`unknown drill "no-such-drill"`}},
	} {
		args := append(c.args, "--scenarios", "../../scenarios", "--k6", k6)
		if c.args[0] == "k8s" || c.args[0] == "list" {
			args = append(c.args, "--scenarios", "../../scenarios")
		}
		_, stderr, err := run(t, args...)
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		msg := err.Error()
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: error %q lacks %q", c.args, msg, w)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("%v: error is not one line: %q", c.args, msg)
		}
		if strings.Contains(msg, "docker") || strings.Contains(stderr, "images:") {
			t.Errorf("%v: got past the arguments to Docker: %q %q", c.args, msg, stderr)
		}
		if code := exitCode(err, &bytes.Buffer{}); code != exitUsage {
			t.Errorf("%v: exit code %d, want %d", c.args, code, exitUsage)
		}
	}
}

// Without a Docker engine at DOCKER_HOST, run, nightly and images fail at once,
// naming the endpoint, before they look for images (which would all look
// missing and start a build) or start anything.
func TestUnreachableDockerFailsFastNamingTheEndpoint(t *testing.T) {
	t.Setenv("DOCKER_HOST", noEngine)
	// Neither docker nor debootstrap can be found: should the check ever
	// be skipped, the image build fails at once instead of running.
	t.Setenv("PATH", t.TempDir())
	k6 := fakeK6(t)
	for _, args := range [][]string{
		{"run", "pipeline", "--out", t.TempDir()},
		{"run", "ddl-storm", "--short", "--set", "concurrency=2", "--profile", "protected", "--out", t.TempDir()},
		{"nightly", "--drills", "pipeline", "--out", t.TempDir()},
		// A service's image is looked for after Docker answers, else it
		// would look missing.
		{"run", "app-slow-database", "--app", "team/api:1", "--out", t.TempDir()},
		{"nightly", "--drills", "app-slow-database", "--app", "team/api:1", "--out", t.TempDir()},
		{"images"},
		{"images", "--check"},
	} {
		if args[0] != "images" {
			args = append(args, "--scenarios", "../../scenarios", "--k6", k6)
		}
		start := time.Now()
		_, stderr, err := run(t, args...)
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%v: no error", args)
		}
		msg := err.Error()
		if !strings.Contains(msg, noEngine) || !strings.Contains(msg, "DOCKER_HOST") || strings.Contains(msg, "\n") {
			t.Errorf("%v: error %q: want one line naming %s and DOCKER_HOST", args, msg, noEngine)
		}
		if strings.Contains(stderr, "images:") || strings.Contains(stderr, "bootstrap") {
			t.Errorf("%v: started on the images: %q", args, stderr)
		}
		if took > 5*time.Second {
			t.Errorf("%v: took %s to fail", args, took)
		}
		if code := exitCode(err, &bytes.Buffer{}); code != exitError {
			t.Errorf("%v: exit code %d, want %d (nothing could run)", args, code, exitError)
		}
	}
}

func TestListDrillShowsItsParameters(t *testing.T) {
	out, _, err := run(t, "list", "ddl-storm", "--scenarios", "../../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"short form: duration=50 storm_from=10 storm=30",
		"NAME", "TYPE", "DEFAULT", "PER PROFILE", "DESCRIPTION",
		"migrations run at once", "protected=1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("list ddl-storm lacks %q:\n%s", want, out)
		}
	}
	var concurrency string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "concurrency ") {
			concurrency = strings.Join(strings.Fields(l), " ")
		}
	}
	if !strings.HasPrefix(concurrency, "concurrency number 8 protected=1 - migrations run at once") {
		t.Errorf("concurrency row = %q", concurrency)
	}
}

// The runner pods get what `firedrill run` gives k6: every parameter,
// resolved for the profile, typed in FIREDRILL_PARAMS and one by one.
func TestK8sManifestsCarryTheResolvedParameters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "k8s")
	_, _, err := run(t, "k8s", "manifests", "ddl-storm", "--scenarios", "../../scenarios", "--profile", "protected", "--out", dir,
		"--set", "rate=300", "--memcached", "mc-0:11211", "--mysql-dsn", "u:p@tcp(db:3306)/f", "--toxiproxy", "http://toxiproxy:8474")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "testrun.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	for _, want := range []string{
		`"concurrency":1`, `"rate":300`, `"duration":60`, // protected's default, --set, the declared default
		"name: FIREDRILL_CONCURRENCY", "name: FIREDRILL_PARAMS",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("testrun.yaml lacks %q", want)
		}
	}
}
