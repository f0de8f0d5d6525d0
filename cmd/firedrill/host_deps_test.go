package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hostDeps runs scripts/host-deps.sh with nothing on PATH but fakes: id
// answers uid, bin/firedrill's `images --check` exits imagesRC, and
// apt-get and debootstrap exist when asked for. apt-get only logs its
// arguments: nothing is installed.
func hostDeps(t *testing.T, uid string, imagesRC int, apt, debootstrap bool, args ...string) (out, aptLog string, code int) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(dir, "apt.log")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("id", "echo "+uid)
	images := "exit 0"
	switch imagesRC {
	case 1:
		images = "echo firedrill/mariadb:x; echo firedrill/memcached:y; exit 1"
	case 4:
		images = "echo 'firedrill: docker: cannot reach the Docker engine at unix:///nowhere.sock (DOCKER_HOST)' >&2; exit 4"
	}
	write("firedrill", `[ "$1 $2" = "images --check" ] || { echo "unexpected: $*" >&2; exit 9; }`+"\n"+images)
	if apt {
		write("apt-get", `echo "$@" >> `+logf)
	}
	if debootstrap {
		write("debootstrap", "exit 0")
	}
	cmd := exec.Command("/bin/bash", append([]string{"../../scripts/host-deps.sh"}, args...)...)
	cmd.Env = []string{"PATH=" + bin, "FIREDRILL=" + filepath.Join(bin, "firedrill")}
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	l, _ := os.ReadFile(logf)
	return b.String(), string(l), cmd.ProcessState.ExitCode()
}

func TestHostDeps(t *testing.T) {
	const suggestBase = "make images IMAGES_FLAGS='--base debian:bookworm-slim' && make run"
	for _, c := range []struct {
		name        string
		uid         string
		imagesRC    int
		apt, deboot bool
		args        []string
		code        int
		say         []string
		aptRan      string
	}{
		{name: "images there", uid: "1000", imagesRC: 0, code: 0},
		{name: "pulled base", uid: "1000", imagesRC: 9, args: []string{"--base", "debian:bookworm-slim"}, code: 0},
		{name: "no docker", uid: "0", imagesRC: 4, apt: true, code: 4, say: []string{"unix:///nowhere.sock"}},
		{name: "user without debootstrap", uid: "1000", imagesRC: 1, apt: true, code: 1, say: []string{
			"firedrill/mariadb:x firedrill/memcached:y",
			"sudo apt-get update && sudo apt-get install -y --no-install-recommends debootstrap && sudo make images && make run",
			suggestBase}},
		{name: "user with debootstrap", uid: "1000", imagesRC: 1, apt: true, deboot: true, code: 1, say: []string{
			"needs root. Run:", "  sudo make images && make run"}},
		{name: "root with apt", uid: "0", imagesRC: 1, apt: true, code: 0, say: []string{"installing debootstrap"},
			aptRan: "update -q\ninstall -y -q --no-install-recommends debootstrap\n"},
		{name: "root without apt", uid: "0", imagesRC: 1, code: 1, say: []string{"no apt-get", "Install debootstrap", suggestBase}},
		{name: "root with debootstrap", uid: "0", imagesRC: 1, apt: true, deboot: true, code: 0},
	} {
		out, aptLog, code := hostDeps(t, c.uid, c.imagesRC, c.apt, c.deboot, c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s", c.name, code, c.code, out)
		}
		for _, s := range c.say {
			if !strings.Contains(out, s) {
				t.Errorf("%s: output lacks %q:\n%s", c.name, s, out)
			}
		}
		if aptLog != c.aptRan {
			t.Errorf("%s: apt-get ran with %q, want %q", c.name, aptLog, c.aptRan)
		}
	}
}

// `make run` on a fresh machine: the binaries, then the host tools, then
// the images, then the drill (a dry run: nothing is built or installed).
func TestMakeRunInstallsHostToolsBeforeTheImages(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	out, err := exec.Command("make", "-n", "-B", "-C", "../..", "run").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n run: %v\n%s", err, out)
	}
	s := string(out)
	last := -1
	for _, step := range []string{"-o bin/firedrill ./cmd/firedrill", "scripts/host-deps.sh", "bin/firedrill images", "bin/firedrill run pipeline"} {
		i := strings.Index(s, step)
		if i < 0 || i < last {
			t.Fatalf("make -n run: %q missing or out of order:\n%s", step, s)
		}
		last = i
	}
	// debootstrap is in /usr/sbin, which a user's PATH lacks, and Go may be
	// where its installer puts it, which sudo's PATH lacks.
	cmd := exec.Command("make", "-s", "--no-print-directory", "-C", "../..", "--eval", "print-path: ; @echo \"$$PATH\"", "print-path")
	cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin")
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make print-path: %v\n%s", err, out)
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/go/bin"} {
		if !strings.Contains(":"+strings.TrimSpace(string(out))+":", ":"+dir+":") {
			t.Errorf("make's PATH %q lacks %s", out, dir)
		}
	}
}
