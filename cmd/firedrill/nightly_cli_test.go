package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
