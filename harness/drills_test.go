package harness

import (
	"os"
	"path/filepath"
	"regexp"
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
		"host-bare":     {"// @drill host-bare\n// @expect default=held\n// @host pt-kill", "bad @host"},
		"host-profile":  {"// @drill host-profile\n// @expect default=held\n// @host pt-kill percona-toolkit other", "@host pt-kill"},
		"db-option":     {"// @drill db-option\n// @expect default=held\n// @db thread-handling=pool-of-threads", "bad @db"},
		"tier-zero":     {"// @drill tier-zero\n// @expect default=held\n// @tier 0", "bad @tier"},
		"tier-word":     {"// @drill tier-word\n// @expect default=held\n// @tier one", "bad @tier"},
	} {
		dir := t.TempDir()
		writeDrill(t, dir, name, c.header)
		if _, err := LoadDrills(dir); err == nil || !strings.Contains(err.Error(), name+".js") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error naming the file and %q, got %v", name, c.want, err)
		}
	}
}

// @host names a command a profile runs on the host; CheckHost names the
// missing command and its package for that profile only.
func TestHostTools(t *testing.T) {
	dir := t.TempDir()
	writeDrill(t, dir, "h", "// @drill h\n// @expect a=held b=held\n// @host sh coreutils\n// @host no-such-tool-here some-package b")
	ds, err := LoadDrills(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	if len(d.Host) != 2 || d.Host[1].Command != "no-such-tool-here" || d.Host[1].Package != "some-package" || len(d.Host[1].Profiles) != 1 {
		t.Fatalf("host tools %+v", d.Host)
	}
	if err := d.CheckHost("a"); err != nil {
		t.Errorf("profile a needs only sh: %v", err)
	}
	err = d.CheckHost("b")
	if err == nil || !strings.Contains(err.Error(), "no-such-tool-here") || !strings.Contains(err.Error(), "apt-get install some-package") {
		t.Errorf("profile b: %v, want the missing command and its package", err)
	}
}

// @db gives the server options the drill's database starts with.
func TestDBArgs(t *testing.T) {
	dir := t.TempDir()
	writeDrill(t, dir, "q", "// @drill q\n// @expect a=held\n// @db --thread-handling=pool-of-threads  --thread-pool-size=1")
	writeDrill(t, dir, "r", "// @drill r\n// @expect a=held")
	ds, err := LoadDrills(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ds[0].DBArgs, " "); got != "--thread-handling=pool-of-threads --thread-pool-size=1" {
		t.Errorf("q: DBArgs %q", got)
	}
	if ds[1].DBArgs != nil {
		t.Errorf("r: DBArgs %q, want none", ds[1].DBArgs)
	}
}

// @tier asks for a second cache tier's servers.
func TestTier(t *testing.T) {
	dir := t.TempDir()
	writeDrill(t, dir, "q", "// @drill q\n// @expect a=held\n// @tier 2")
	writeDrill(t, dir, "r", "// @drill r\n// @expect a=held")
	ds, err := LoadDrills(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Tier != 2 || ds[1].Tier != 0 {
		t.Errorf("Tier: q %d (want 2), r %d (want 0)", ds[0].Tier, ds[1].Tier)
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
	writeDrill(t, dir, "short", "// @drill short\n// @expect default=held\n// @nightly duration=40  fault_from=10\n"+
		"// @param duration number 60 seconds of traffic\n// @param fault_from number 15 s: the fault's start")
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
	if got := ds[1].Overrides(set, true); len(got) != 2 || got["duration"] != "40" || got["fault_from"] != "5" {
		t.Errorf("short overrides = %v, want duration=40 and --set's fault_from=5", got)
	}
	if got := ds[1].Overrides(set, false); len(got) != 1 || got["fault_from"] != "5" {
		t.Errorf("full overrides = %v, want only --set's fault_from=5", got)
	}
}

// paramCall is a param('name') call in a drill's script.
var paramCall = regexp.MustCompile(`\bparam\(\s*'([^']*)'\s*(,)?`)

// The header and the script must agree: a name the script reads but the
// header does not declare throws when the run starts, and a declared name
// the script never reads is a --set that silently does nothing. Every
// drill with two profiles needs a short form, or a nightly runs it at
// full length.
func TestShippedDrillsDeclareEveryParameterTheyRead(t *testing.T) {
	ds, err := LoadDrills("../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	test, err := LoadDrills("../scenarios/testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range append(ds, test...) {
		if len(d.Profiles) > 1 && len(d.Nightly) == 0 {
			t.Errorf("%s: no @nightly short form; a nightly would run it at full length", d.Name)
		}
		src, err := os.ReadFile(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		read := map[string]bool{}
		for _, m := range paramCall.FindAllStringSubmatch(string(src), -1) {
			read[m[1]] = true
			if m[2] != "" {
				t.Errorf("%s: param('%s', ...) passes a default: declare it in the header instead", d.Name, m[1])
			}
			if _, ok := d.Param(m[1]); !ok {
				t.Errorf("%s: the script reads param('%s'), which its header does not declare", d.Name, m[1])
			}
		}
		for _, p := range d.Params {
			if !read[p.Name] {
				t.Errorf("%s: @param %s is declared, but the script never reads param('%s')", d.Name, p.Name, p.Name)
			}
		}
	}
	if len(ds) < 7 {
		t.Errorf("found %d drills, want the 7 shipped", len(ds))
	}
}
