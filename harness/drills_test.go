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
	for name, c := range map[string]struct{ header, want string }{
		"bad-verdict":   {"// @drill bad-verdict\n// @expect default=fine", ""},
		"no-expect":     {"// @drill no-expect", ""},
		"misnamed":      {"// @drill other-name\n// @expect default=held", ""},
		"nightly-bare":  {"// @drill nightly-bare\n// @expect default=held\n// @nightly duration", "bad @nightly"},
		"nightly-name":  {"// @drill nightly-name\n// @expect default=held\n// @nightly =40", "bad @nightly"},
		"nightly-value": {"// @drill nightly-value\n// @expect default=held\n// @nightly duration=", "bad @nightly"},
	} {
		dir := t.TempDir()
		writeDrill(t, dir, name, c.header)
		if _, err := LoadDrills(dir); err == nil || !strings.Contains(err.Error(), name+".js") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error naming the file and %q, got %v", name, c.want, err)
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

func TestNightlyTag(t *testing.T) {
	dir := t.TempDir()
	writeDrill(t, dir, "short", "// @drill short\n// @expect default=held\n// @nightly duration=40  fault_from=10")
	writeDrill(t, dir, "plain", "// @drill plain\n// @expect default=held")
	ds, err := LoadDrills(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Name != "plain" || ds[0].Nightly != nil {
		t.Errorf("plain drill: Nightly = %v, want nil", ds[0].Nightly)
	}
	if got := ds[1].Nightly; len(got) != 2 || got["duration"] != "40" || got["fault_from"] != "10" {
		t.Errorf("short drill: Nightly = %v", got)
	}
	set := map[string]string{"fault_from": "5"}
	if got := ds[1].Params(set, true); len(got) != 2 || got["duration"] != "40" || got["fault_from"] != "5" {
		t.Errorf("short params = %v, want duration=40 and --set's fault_from=5", got)
	}
	if got := ds[1].Params(set, false); len(got) != 1 || got["fault_from"] != "5" {
		t.Errorf("full params = %v, want only --set's fault_from=5", got)
	}
}

// A misspelt @nightly parameter would be ignored by the script and the
// nightly would silently run the drill at full length: every name must be
// one the script reads with param().
func TestShippedNightlyParametersAreReadByTheirScripts(t *testing.T) {
	ds, err := LoadDrills("../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if len(d.Profiles) > 1 && len(d.Nightly) == 0 {
			t.Errorf("%s: no @nightly short form; a nightly would run it at full length", d.Name)
		}
		src, err := os.ReadFile(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		for k := range d.Nightly {
			if !strings.Contains(string(src), "param('"+k+"'") {
				t.Errorf("%s: @nightly names %q, which the script never reads with param('%s', ...)", d.Name, k, k)
			}
		}
	}
}
