package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firedrill-dev/firedrill/harness"
)

func TestNightlyBaselineK8sMergeArguments(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"nightly", "--repeats", "0"}, "--repeats must be at least 1"},
		{[]string{"nightly", "--generators", "0"}, "--generators must be at least 1"},
		{[]string{"nightly", "--drills", "nope", "--scenarios", "../../scenarios"}, `unknown drill "nope"`},
		{[]string{"nightly", "extra"}, "takes no arguments"},
		{[]string{"baseline", "save"}, "--release is required"},
		{[]string{"baseline", "save", "--release", "v1", "--from", "/nonexistent"}, "no such file"},
		{[]string{"baseline", "frob"}, `unknown subcommand "frob"`},
		{[]string{"k8s", "manifests", "pipeline", "--scenarios", "../../scenarios"}, "give the endpoints"},
		{[]string{"k8s", "manifests", "pipeline", "--scenarios", "../../scenarios", "--parallelism", "0", "--memcached", "a:1", "--mysql-dsn", "x", "--toxiproxy", "http://t"}, "--parallelism must be at least 1"},
		{[]string{"merge", "pipeline", "--scenarios", "../../scenarios", "--out", "x", "/nonexistent"}, "no such file"},
		{[]string{"run", "pipeline", "--generators", "0", "--scenarios", "../../scenarios"}, "--generators must be at least 1"},
	}
	for _, c := range cases {
		_, stderr, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error()+stderr, c.want) {
			t.Errorf("%v: err=%v stderr=%q, want %q", c.args, err, stderr, c.want)
		}
	}
}

func TestBaselineListEmptyAndK8sManifests(t *testing.T) {
	dir := t.TempDir()
	out, _, err := run(t, "baseline", "list", "--baselines", filepath.Join(dir, "none"))
	if err != nil || !strings.Contains(out, "no baselines") {
		t.Errorf("list: %v %q", err, out)
	}
	k := filepath.Join(dir, "k8s")
	out, _, err = run(t, "k8s", "manifests", "pipeline", "--scenarios", "../../scenarios", "--parallelism", "3", "--out", k,
		"--memcached", "mc-0:11211,mc-1:11211", "--mysql-dsn", "u:p@tcp(db:3306)/f", "--toxiproxy", "http://toxiproxy:8474")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"configmap.yaml", "pvc.yaml", "testrun.yaml", "kustomization.yaml", "Dockerfile"} {
		if !strings.Contains(out, f) {
			t.Errorf("output lacks %s: %q", f, out)
		}
	}
	b, _ := os.ReadFile(filepath.Join(k, "testrun.yaml"))
	for _, want := range []string{"parallelism: 3", "FIREDRILL_MEMCACHED_PROXIES", "memcached-0,memcached-1", "kind: TestRun"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("testrun.yaml lacks %q", want)
		}
	}
}

// writeServiceFile writes firedrill.yaml into a fresh folder and makes it
// the working directory, as CI would run the nightly beside its file.
func writeServiceFile(t *testing.T, body string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, harness.ServiceFile), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
}

// firedrill.yaml (or --config) applies only when a drill to run drives a
// service: with none, the nightly has no service (so no image check, and
// the release label is git's), as run ignores the file for such a drill;
// --app with none is an error, as in run.
func TestNightlyServiceFileOnlyWithServiceDrills(t *testing.T) {
	scenarios, err := filepath.Abs("../../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	drills := func(names ...string) []harness.Drill {
		var out []harness.Drill
		for _, n := range names {
			d, err := harness.FindDrill(scenarios, n)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		return out
	}
	writeServiceFile(t, "image: firedrill/no-such-image:v9\nport: 8080\n")
	for _, tc := range []struct {
		args    []string
		drills  []string
		service bool   // the nightly has a service
		err     string // or this error
	}{
		{nil, []string{"pipeline", "hot-key-expiry"}, false, ""},
		{[]string{"--config", harness.ServiceFile}, []string{"pipeline"}, false, ""},
		{[]string{"--config", "no-such.yaml"}, []string{"pipeline"}, false, ""},
		{nil, []string{"pipeline", "app-slow-database"}, true, ""},
		{[]string{"--app", "team/api:1"}, []string{"pipeline"}, false, "none of the drills to run drives a service under test: drop --app"},
		{[]string{"--app-port", "9090"}, []string{"pipeline"}, false, "drop --app"},
		// The only service drill left out (one release, a rolling deploy):
		// the nightly runs as without a service.
		{nil, []string{"pipeline", "app-format-deploy"}, false, ""},
	} {
		fs := newTestFlagSet()
		sf := addServiceFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var w strings.Builder
		svc, out, err := sf.nightlyService(fs, drills(tc.drills...), false, 3, &w)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v %v: err = %v, want %q", tc.args, tc.drills, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v %v: %v", tc.args, tc.drills, err)
			continue
		}
		if (svc != nil) != tc.service {
			t.Errorf("%v %v: service %+v, want one: %v", tc.args, tc.drills, svc, tc.service)
		}
		if len(out) == 0 || out[0].Name != "pipeline" {
			t.Errorf("%v %v: drills to run %v", tc.args, tc.drills, out)
		}
	}
}

// A firedrill.yaml the nightly cannot use (here an unknown endpoint) is
// not even read when no drill to run drives a service: the nightly goes on
// to its own checks (here Docker, which is missing).
func TestNightlyIgnoresTheServiceFileOfNoDrill(t *testing.T) {
	scenarios, err := filepath.Abs("../../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	k6 := fakeK6(t)
	t.Setenv("DOCKER_HOST", noEngine)
	t.Setenv("PATH", t.TempDir())
	writeServiceFile(t, "image: firedrill/no-such-image:v9\nenv:\n  DSN: \"{{nope.dsn}}\"\n")
	_, _, err = run(t, "nightly", "--drills", "pipeline", "--scenarios", scenarios, "--k6", k6, "--out", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), noEngine) || strings.Contains(err.Error(), "nope") {
		t.Errorf("err = %v, want the missing Docker engine, not the file's endpoint", err)
	}
	// With a drill that drives a service, the file applies.
	_, _, err = run(t, "nightly", "--drills", "pipeline,app-slow-database", "--scenarios", scenarios, "--k6", k6, "--out", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "unknown endpoint {{nope.dsn}}") {
		t.Errorf("err = %v, want the file's unknown endpoint", err)
	}
}
