package environments

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAptMirrorDeb822SkipsSecurityAndOtherSuites(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/node.sources"),
		"Types: deb\nURIs: https://deb.example.org/node_20.x\nSuites: nodistro\nComponents: main\n")
	writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/debian.sources"),
		"Types: deb\n# a comment\nURIs: http://mirror.example.net/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\n"+
			"Types: deb\nURIs: http://mirror.example.net/debian-security\nSuites: bookworm-security\nComponents: main\n")
	got, err := AptMirror(root, "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	if got != "http://mirror.example.net/debian" {
		t.Errorf("mirror = %q", got)
	}
}

func TestAptMirrorSourcesList(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/apt/sources.list"),
		"# deb http://old.example/debian bookworm main\n"+
			"deb http://security.example/debian-security bookworm-security main\n"+
			"deb [signed-by=/k.gpg arch=amd64] http://list.example/debian bookworm main contrib\n")
	got, err := AptMirror(root, "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	if got != "http://list.example/debian" {
		t.Errorf("mirror = %q", got)
	}
}

func TestAptMirrorNoneFound(t *testing.T) {
	_, err := AptMirror(t.TempDir(), "bookworm")
	if err == nil || !strings.Contains(err.Error(), "--base") {
		t.Errorf("want an error that says how to fix it, got %v", err)
	}
}

func TestOSCodename(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/os-release"), "NAME=\"Debian\"\nVERSION_CODENAME=trixie\n")
	if got := osCodename(root); got != "trixie" {
		t.Errorf("codename = %q", got)
	}
	if got := osCodename(t.TempDir()); got != baseSuite {
		t.Errorf("default codename = %q", got)
	}
}

// The toxiproxy image is named for the module version go.mod pins.
func TestToxiproxyVersionMatchesGoMod(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "github.com/Shopify/toxiproxy/v2 "+ToxiproxyVersion) {
		t.Errorf("go.mod does not pin toxiproxy %s", ToxiproxyVersion)
	}
}

func TestEveryDockerfileTakesABase(t *testing.T) {
	for _, svc := range []string{"mariadb", "memcached", "toxiproxy"} {
		b, err := dockerfiles.ReadFile("images/" + svc + "/Dockerfile")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "ARG BASE") || !strings.Contains(string(b), "FROM ${BASE}") {
			t.Errorf("%s/Dockerfile does not build FROM ${BASE}", svc)
		}
	}
}

func TestOwnerAlive(t *testing.T) {
	if !ownerAlive(Labels("r", "x")) {
		t.Error("this process is alive")
	}
	if ownerAlive(map[string]string{LabelPID: "999999999"}) {
		t.Error("a pid that does not exist is not alive")
	}
	l := Labels("r", "x")
	l[LabelStarted] = "1"
	if ownerAlive(l) {
		t.Error("a reused pid (other start time) is not the owner")
	}
}
