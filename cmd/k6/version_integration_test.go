//go:build integration

package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bin/k6 (built by `make k6` before the integration tests) lists every
// extension under extensions/.
func TestBinaryListsEveryExtension(t *testing.T) {
	out, err := exec.Command("../../bin/k6", "version").CombinedOutput()
	if err != nil {
		t.Fatalf("bin/k6 version: %v (build it with `make k6`)\n%s", err, out)
	}
	for _, d := range extensionDirs(t) {
		if want := "k6/x/" + filepath.Base(d); !strings.Contains(string(out), want) {
			t.Errorf("bin/k6 version does not list %s:\n%s", want, out)
		}
	}
}
