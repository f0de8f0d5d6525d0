package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeDrill(t *testing.T, dir, name, header string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name+".js"), []byte(header+"\nexport default function () {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDrills(t *testing.T) {
	dir := t.TempDir()
	writeDrill(t, dir, "b-drill", "/**\n * @drill b-drill\n * @incident 000_x.txt\n * @summary the b one\n * @expect unprotected=broken protected=held\n */")
	writeDrill(t, dir, "a-drill", "// @drill a-drill\n// @summary the a one\n// @expect default=held")
	writeDrill(t, dir, "helper", "// a library, no @drill tag")
	ds, err := LoadDrills(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].Name != "a-drill" || ds[1].Name != "b-drill" {
		t.Fatalf("drills = %+v", ds)
	}
	b := ds[1]
	if b.Incident != "000_x.txt" || b.Summary != "the b one" || strings.Join(b.Profiles, ",") != "unprotected,protected" ||
		b.Expect["unprotected"] != "broken" || b.Expect["protected"] != "held" {
		t.Errorf("b-drill = %+v", b)
	}
}

func TestFindDrillUnknownNamesTheChoices(t *testing.T) {
	dir := t.TempDir()
	writeDrill(t, dir, "only", "// @drill only\n// @expect default=held")
	_, err := FindDrill(dir, "no-such-drill")
	if err == nil || !strings.Contains(err.Error(), `unknown drill "no-such-drill"`) || !strings.Contains(err.Error(), "only") {
		t.Errorf("err = %v", err)
	}
}

func TestBadHeadersAreErrors(t *testing.T) {
	for name, header := range map[string]string{
		"bad-verdict": "// @drill bad-verdict\n// @expect default=fine",
		"no-expect":   "// @drill no-expect",
		"misnamed":    "// @drill other-name\n// @expect default=held",
	} {
		dir := t.TempDir()
		writeDrill(t, dir, name, header)
		if _, err := LoadDrills(dir); err == nil || !strings.Contains(err.Error(), name+".js") {
			t.Errorf("%s: want an error naming the file, got %v", name, err)
		}
	}
}

func TestEveryShippedDrillParses(t *testing.T) {
	ds, err := LoadDrills("../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Summary == "" {
			t.Errorf("%s: no @summary", d.Name)
		}
	}
}
