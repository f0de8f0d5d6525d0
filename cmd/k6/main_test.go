package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every folder under extensions/ is compiled into bin/k6: a new extension
// that is not imported here would silently be missing from drills.
func TestEveryExtensionIsImported(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range extensionDirs(t) {
		pkg := "github.com/firedrill-dev/firedrill/extensions/" + filepath.Base(d)
		if !strings.Contains(string(src), `"`+pkg+`"`) {
			t.Errorf("cmd/k6 does not import %s", pkg)
		}
	}
}

// extensionDirs lists the extension folders under extensions/; internal/
// holds packages the extensions share, not an extension.
func extensionDirs(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob("../../extensions/*")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, d := range all {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && filepath.Base(d) != "internal" {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		t.Fatal("no extensions found under extensions/")
	}
	return dirs
}

// Extensions must build without anything from cmd/, as upstream xk6 builds them.
func TestExtensionsDoNotImportCmd(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/firedrill-dev/firedrill/extensions/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/firedrill-dev/firedrill/cmd") {
			t.Errorf("an extension depends on %s", p)
		}
	}
}
