package harness

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const twoProfiles = "// @drill d\n// @expect unprotected=broken protected=held\n"

func loadOne(t *testing.T, header string) (Drill, error) {
	t.Helper()
	dir := t.TempDir()
	writeDrill(t, dir, "d", header)
	ds, err := LoadDrills(dir)
	if err != nil {
		return Drill{}, err
	}
	return ds[0], nil
}

func TestParamLines(t *testing.T) {
	d, err := loadOne(t, "/**\n * @drill d\n * @expect unprotected=broken protected=held\n"+
		" * @param rate        number  200                 operations per second\n"+
		" * @param concurrency number  8     protected=1   ALTERs run at once\n"+
		" * @param judge       string  none  protected=leases unprotected=none  the protection judged\n"+
		" * @param breaker     bool    false protected=true  a breaker=on switch, in words\n"+
		" */")
	if err != nil {
		t.Fatal(err)
	}
	want := []Param{
		{Name: "rate", Type: "number", Default: "200", Desc: "operations per second"},
		{Name: "concurrency", Type: "number", Default: "8", Profiles: map[string]string{"protected": "1"}, Desc: "ALTERs run at once"},
		{Name: "judge", Type: "string", Default: "none", Profiles: map[string]string{"protected": "leases", "unprotected": "none"}, Desc: "the protection judged"},
		// The description starts at the first word that is not
		// profile=value, and may hold = itself.
		{Name: "breaker", Type: "bool", Default: "false", Profiles: map[string]string{"protected": "true"}, Desc: "a breaker=on switch, in words"},
	}
	if !reflect.DeepEqual(d.Params, want) {
		t.Errorf("params:\n got %+v\nwant %+v", d.Params, want)
	}
	if got := d.Params[2].ProfileDefaults(); got != "protected=leases unprotected=none" {
		t.Errorf("ProfileDefaults = %q", got)
	}
}

func TestBadParamLinesAreErrors(t *testing.T) {
	for name, c := range map[string]struct{ lines, want string }{
		"too-short":       {"// @param rate number 200", "want `@param NAME TYPE DEFAULT"},
		"bad-type":        {"// @param rate float 200 per second", `type "float": want one of number, string, bool`},
		"bad-number":      {"// @param rate number fast per second", `rate is a number, got "fast"`},
		"nan":             {"// @param rate number NaN per second", `rate is a number, got "NaN"`},
		"bad-bool":        {"// @param on bool yes a switch", `on is a bool (true or false), got "yes"`},
		"bad-name":        {"// @param Rate number 1 per second", `name "Rate"`},
		"reserved":        {"// @param seed number 1 a seed", `name "seed" is taken`},
		"no-description":  {"// @param rate number 1 protected=2", "rate: no description"},
		"profile-type":    {"// @param rate number 1 protected=lots per second", `default of profile protected: rate is a number, got "lots"`},
		"profile-twice":   {"// @param rate number 1 protected=2 protected=3 per second", "profile protected has two defaults"},
		"unknown-profile": {"// @param rate number 1 staging=2 per second", `a default for profile "staging", which @expect does not declare (unprotected, protected)`},
		"duplicate":       {"// @param rate number 1 per second\n// @param rate number 2 per minute", "@param rate is declared twice"},
	} {
		_, err := loadOne(t, twoProfiles+c.lines)
		if err == nil || !strings.Contains(err.Error(), "d.js") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error naming d.js and %q, got %v", name, c.want, err)
		}
	}
}

func TestNightlyIsCheckedAgainstTheDeclarations(t *testing.T) {
	decl := "// @param duration number 60 seconds of traffic\n// @param table string all protections to replay\n"
	for name, c := range map[string]struct{ nightly, want string }{
		"unknown":    {"// @nightly duraton=40", `drill d has no parameter "duraton"; it takes duration (number), table (string)`},
		"wrong-type": {"// @nightly duration=forty", `duration is a number, got "forty"`},
	} {
		_, err := loadOne(t, twoProfiles+decl+c.nightly)
		if err == nil || !strings.Contains(err.Error(), "d.js: bad @nightly") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error naming d.js and %q, got %v", name, c.want, err)
		}
	}
	if _, err := loadOne(t, twoProfiles+decl+"// @nightly duration=40 table=none,leases"); err != nil {
		t.Errorf("a good @nightly: %v", err)
	}
}

// Tags are read from the header comment only: an @ in code below it is
// not a declaration.
func TestHeaderEndsAtTheFirstLineOfCode(t *testing.T) {
	d, err := loadOne(t, twoProfiles+"// @param rate number 1 per second\n\nconst x = 1;\n// @param later number 2 not a header line")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Params) != 1 || d.Params[0].Name != "rate" {
		t.Errorf("params = %+v, want rate only", d.Params)
	}
}

func resolvingDrill(t *testing.T) Drill {
	t.Helper()
	d, err := loadOne(t, twoProfiles+"// @nightly duration=40 concurrency=4\n"+
		"// @param duration    number 60                seconds of traffic\n"+
		"// @param concurrency number 8  protected=1    ALTERs at once\n"+
		"// @param rate        number 200 protected=150 operations per second\n"+
		"// @param judge       string none protected=leases the protection judged\n"+
		"// @param verbose     bool   false             log every step\n")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func values(t *testing.T, d Drill, profile string, set map[string]string, short bool) map[string]any {
	t.Helper()
	vals, err := d.Resolve(profile, d.Overrides(set, short))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, v := range vals {
		out[v.Name] = v.Typed
	}
	return out
}

// Declared default < the profile's default < the short form < --set.
func TestResolutionOrder(t *testing.T) {
	d := resolvingDrill(t)
	for _, c := range []struct {
		profile string
		set     map[string]string
		short   bool
		want    map[string]any
	}{
		{"unprotected", nil, false, map[string]any{"duration": 60.0, "concurrency": 8.0, "rate": 200.0, "judge": "none", "verbose": false}},
		{"protected", nil, false, map[string]any{"duration": 60.0, "concurrency": 1.0, "rate": 150.0, "judge": "leases", "verbose": false}},
		// The short form wins over the profile's default ...
		{"protected", nil, true, map[string]any{"duration": 40.0, "concurrency": 4.0, "rate": 150.0, "judge": "leases", "verbose": false}},
		// ... and --set over both.
		{"protected", map[string]string{"concurrency": "2", "rate": "90", "verbose": "true"}, true,
			map[string]any{"duration": 40.0, "concurrency": 2.0, "rate": 90.0, "judge": "leases", "verbose": true}},
		{"unprotected", map[string]string{"judge": "xfetch"}, false, map[string]any{"duration": 60.0, "concurrency": 8.0, "rate": 200.0, "judge": "xfetch", "verbose": false}},
	} {
		if got := values(t, d, c.profile, c.set, c.short); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s set=%v short=%v:\n got %v\nwant %v", c.profile, c.set, c.short, got, c.want)
		}
	}
}

func TestSetErrors(t *testing.T) {
	d := resolvingDrill(t)
	_, err := d.Resolve("protected", map[string]string{"nosuch": "1"})
	if err == nil || !strings.Contains(err.Error(), `no parameter "nosuch"`) ||
		!strings.Contains(err.Error(), "duration (number), concurrency (number), rate (number), judge (string), verbose (bool)") {
		t.Errorf("unknown name: %v, want it to list every declared parameter with its type", err)
	}
	_, err = d.Resolve("protected", map[string]string{"rate": "abc"})
	if err == nil || !strings.Contains(err.Error(), `rate is a number, got "abc"`) {
		t.Errorf("wrong type: %v", err)
	}
	_, err = d.Resolve("protected", map[string]string{"verbose": "1"})
	if err == nil || !strings.Contains(err.Error(), `verbose is a bool (true or false), got "1"`) {
		t.Errorf("wrong bool: %v", err)
	}
	if got := d.Declared(map[string]string{"rate": "1", "nosuch": "2"}); !reflect.DeepEqual(got, map[string]string{"rate": "1"}) {
		t.Errorf("Declared = %v, want rate only", got)
	}
}

func TestScriptVarsCarryEveryParameter(t *testing.T) {
	d := resolvingDrill(t)
	vars, err := ScriptVars(d, "protected", 7, 2, map[string]string{"rate": "1e3", "judge": "coalesce"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, v := range vars {
		k, val, _ := strings.Cut(v, "=")
		env[k] = val
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(env["FIREDRILL_PARAMS"]), &got); err != nil {
		t.Fatalf("FIREDRILL_PARAMS %q: %v", env["FIREDRILL_PARAMS"], err)
	}
	want := map[string]any{"duration": 60.0, "concurrency": 1.0, "rate": 1000.0, "judge": "coalesce", "verbose": false}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FIREDRILL_PARAMS = %v, want %v", got, want)
	}
	// FIREDRILL_<NAME> keeps the value as written, for scripts that read
	// __ENV themselves.
	for k, v := range map[string]string{"FIREDRILL_RATE": "1e3", "FIREDRILL_CONCURRENCY": "1", "FIREDRILL_JUDGE": "coalesce",
		"FIREDRILL_PROFILE": "protected", "FIREDRILL_SEED": "7", "FIREDRILL_GENERATORS": "2"} {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if _, err := ScriptVars(d, "protected", 1, 1, map[string]string{"nosuch": "1"}); err == nil {
		t.Error("ScriptVars accepted an undeclared parameter")
	}
}

// testK6 is firedrill's k6 for the tests that evaluate scripts: bin/k6
// (`make k6`), or FIREDRILL_TEST_K6.
func testK6(t *testing.T) string {
	t.Helper()
	k6 := os.Getenv("FIREDRILL_TEST_K6")
	if k6 == "" {
		k6, _ = filepath.Abs("../bin/k6")
	}
	if _, err := os.Stat(k6); err != nil {
		t.Skipf("no k6 at %s (make k6, or set FIREDRILL_TEST_K6)", k6)
	}
	return k6
}

// Every shipped drill's init code runs in every profile, at full length and
// in its short form, with the parameters the harness resolves: `k6
// inspect` evaluates it (param() throws on a name the header lacks) and
// the checks it declares must validate.
func TestShippedDrillsEvaluateWithTheirParameters(t *testing.T) {
	k6 := testK6(t)
	var ds []Drill
	for _, dir := range []string{"../scenarios", "../scenarios/testdata"} {
		got, err := LoadDrills(dir)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, got...)
	}
	for _, d := range ds {
		for _, p := range d.Profiles {
			for _, short := range []bool{false, true} {
				if short && d.Nightly == nil {
					continue
				}
				vars, err := ScriptVars(d, p, 1, 1, d.Overrides(nil, short))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := InspectSpec(context.Background(), k6, d, vars); err != nil {
					t.Errorf("%s %s short=%v: %v", d.Name, p, short, err)
				}
			}
		}
	}
}

// param() refuses what the header does not declare, and says how to run
// the drill when FIREDRILL_PARAMS is missing.
func TestParamInTheScriptRefusesUndeclaredNames(t *testing.T) {
	k6 := testK6(t)
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "lib"), os.DirFS("../scenarios/lib")); err != nil {
		t.Fatal(err)
	}
	script := "// @drill p\n// @expect default=held\n// @param rate number 5 per second\n" +
		"import { param } from './lib/firedrill.js';\nconst rate = param('rate');\nconst other = param('other');\n" +
		"export const options = { ext: { firedrill: { rate } } };\nexport default function () {}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.js"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := FindDrill(dir, "p")
	if err != nil {
		t.Fatal(err)
	}
	vars, err := ScriptVars(d, "default", 1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = InspectSpec(context.Background(), k6, d, vars)
	if err == nil || !strings.Contains(err.Error(), "declares no parameter other") || !strings.Contains(err.Error(), "it declares rate") {
		t.Errorf("undeclared name: %v", err)
	}
	_, err = InspectSpec(context.Background(), k6, d, []string{"FIREDRILL_PROFILE=default"})
	if err == nil || !strings.Contains(err.Error(), "FIREDRILL_PARAMS is not set: run the drill with `firedrill run DRILL`") {
		t.Errorf("without firedrill: %v", err)
	}
}
