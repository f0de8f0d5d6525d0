package harness

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firedrill-dev/firedrill/environments"
)

func TestServiceFileOfTheExample(t *testing.T) {
	s, err := LoadServiceFile("../examples/app/firedrill.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Releases) != 1 || s.Releases[0].Name != ReleaseApp || s.Releases[0].Image != "firedrill/example-app:v1" {
		t.Errorf("releases = %+v", s.Releases)
	}
	if s.SeedSQL != filepath.Join("../examples/app", "seed.sql") {
		t.Errorf("seed_sql = %q: want it relative to the file", s.SeedSQL)
	}
	if !s.Configurable() || s.Profiles["unprotected"]["CACHE_BREAKER"] != "0" || s.Profiles["protected"]["CACHE_BREAKER"] != "5" {
		t.Errorf("profiles = %+v", s.Profiles)
	}
	if s.MemoryMB != 256 || s.CPUs != 1 || s.Metrics != "/metrics" {
		t.Errorf("limits and metrics = %d MB, %g cpus, %q", s.MemoryMB, s.CPUs, s.Metrics)
	}
	if err := s.Validate(3); err != nil {
		t.Fatal(err)
	}
	specs := s.Specs("unprotected")
	if len(specs) != 1 || specs[0].Env["CACHE_TIMEOUT"] != "2s" || specs[0].Env["MEMCACHED"] != "{{memcached.servers}}" {
		t.Errorf("unprotected spec = %+v", specs)
	}
}

func writeService(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), ServiceFile)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServiceFileRejectsUnknownFieldsAndBothImageAndReleases(t *testing.T) {
	if _, err := LoadServiceFile(writeService(t, "image: a\nimage_tag: b\n")); err == nil || !strings.Contains(err.Error(), "image_tag") {
		t.Errorf("unknown field: err = %v, want it named", err)
	}
	_, err := LoadServiceFile(writeService(t, "image: a\nreleases:\n  base: {image: b}\n"))
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("image and releases: err = %v", err)
	}
	_, err = LoadServiceFile(writeService(t, "releases:\n  canary: {image: b}\n"))
	if err == nil || !strings.Contains(err.Error(), "canary") {
		t.Errorf("a release that is not base or head: err = %v", err)
	}
}

func TestServiceFlagsOverTheFile(t *testing.T) {
	file, err := LoadServiceFile(writeService(t, "image: team/api:1\nport: 9000\nenv:\n  A: one\n  B: two\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ServiceFlags{Apps: []string{"base=team/api:1", "head=team/api:2"}, Env: []string{"B=three", "C={{mysql.addr}}"},
		Memory: "1g", Explicit: true}.Apply(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(2); err != nil {
		t.Fatal(err)
	}
	if len(s.Releases) != 2 || s.Head().Image != "team/api:2" || s.Port != 9000 || s.Health != "/healthz" || s.MemoryMB != 1024 {
		t.Errorf("service = %+v", s)
	}
	if s.Env["A"] != "one" || s.Env["B"] != "three" || s.Env["C"] != "{{mysql.addr}}" {
		t.Errorf("env = %v: the flags go over the file", s.Env)
	}
	if file.Env["B"] != "two" {
		t.Errorf("Apply changed the file's service: %v", file.Env)
	}
	none, err := ServiceFlags{}.Apply(nil)
	if err != nil || none != nil {
		t.Errorf("no file and no flags: %v, %v; want no service", none, err)
	}
}

func TestServiceValidateNamesWhatIsWrong(t *testing.T) {
	cases := []struct {
		flags ServiceFlags
		want  string
	}{
		{ServiceFlags{Apps: []string{"a:1"}, Env: []string{"CACHE={{redis.url}}"}}, "unknown endpoint {{redis.url}}"},
		{ServiceFlags{Apps: []string{"a:1"}, Env: []string{"MC={{memcached.3}}"}}, "unknown endpoint {{memcached.3}}"},
		{ServiceFlags{Apps: []string{"base=a:1"}}, "needs both base=IMAGE and head=IMAGE"},
		{ServiceFlags{Apps: []string{"a:1"}, Port: 70000}, "not a TCP port"},
		{ServiceFlags{Apps: []string{"a:1"}, Health: "healthz"}, "want a path"},
		{ServiceFlags{Apps: []string{"a:1"}, SeedSQL: "/no/such/file.sql"}, "seed sql"},
	}
	for _, c := range cases {
		c.flags.Explicit = true
		s, err := c.flags.Apply(nil)
		if err == nil {
			err = s.Validate(3)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.flags, err, c.want)
		}
	}
	if _, err := (ServiceFlags{Apps: []string{"canary=a:1"}, Explicit: true}).Apply(nil); err == nil {
		t.Error("--app canary=IMAGE: no error")
	}
	if _, err := (ServiceFlags{Memory: "lots", Apps: []string{"a"}, Explicit: true}).Apply(nil); err == nil {
		t.Error("--app-memory lots: no error")
	}
}

func TestReleaseLabelIsTagAndShortImageID(t *testing.T) {
	id := "sha256:fe2d6547ca264b5a1abfb1b941d4faf427b8a5f2c79d9a71e50812d60c2cefe8"
	for image, want := range map[string]string{
		"firedrill/example-app:v2":     "v2-fe2d6547ca26",
		"localhost:5000/team/api":      "latest-fe2d6547ca26",
		"team/api:1.4.0_rc1":           "1.4.0_rc1-fe2d6547ca26",
		"team/api@sha256:0123456789ab": "latest-fe2d6547ca26",
	} {
		got := ReleaseLabel(image, id)
		if got != want {
			t.Errorf("ReleaseLabel(%s) = %q, want %q", image, got, want)
		}
	}
}

func TestAppDrillsDeclareTheirService(t *testing.T) {
	ds, err := LoadDrills("../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	apps := map[string]int{}
	for _, d := range ds {
		if d.UsesApp() {
			apps[d.Name] = d.App
			if !strings.HasPrefix(d.Name, "app-") {
				t.Errorf("%s drives a service under test: name it app-*, as the README and --app's error say", d.Name)
			}
		} else if strings.HasPrefix(d.Name, "app-") {
			t.Errorf("%s: an app-* drill without @app", d.Name)
		}
	}
	if apps["app-cache-unreachable"] != 1 || apps["app-slow-database"] != 1 || apps["app-format-deploy"] != 2 {
		t.Errorf("app drills = %v", apps)
	}
}

// A release whose start failed before StartApp returned it (its container
// created, then it crashed or never started) still has its output saved,
// from the run's container of that release found by its labels; a release
// that never got a container has no file.
func TestAppLogsOfAReleaseThatNeverStarted(t *testing.T) {
	dir := t.TempDir()
	var asked []string
	old := containerLogs
	t.Cleanup(func() { containerLogs = old })
	containerLogs = func(_ context.Context, runID, service string) ([]byte, error) {
		asked = append(asked, runID+"/"+service)
		if service == environments.AppService(ReleaseHead) {
			return nil, errNoContainer
		}
		return []byte("example app: DB_DSN is empty\n"), nil
	}
	var progress bytes.Buffer
	saveAppLogs(context.Background(), &progress, dir, "fd-run", []string{ReleaseBase, ReleaseHead}, nil)
	if strings.Join(asked, " ") != "fd-run/app-base fd-run/app-head" {
		t.Errorf("asked for %v", asked)
	}
	b, err := os.ReadFile(filepath.Join(dir, "app-base.log"))
	if err != nil || string(b) != "example app: DB_DSN is empty\n" {
		t.Errorf("app-base.log = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "app-head.log")); !os.IsNotExist(err) {
		t.Errorf("app-head.log of a release without a container: %v", err)
	}
	if progress.Len() != 0 {
		t.Errorf("progress: %q", progress.String())
	}
}
