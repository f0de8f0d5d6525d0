package k8s

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func crd(t *testing.T) *Schema {
	t.Helper()
	b, err := os.ReadFile("testdata/testrun-crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := CRDSchema(b, "v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func opts(t *testing.T) Options {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "drill.js"), []byte("import { at } from './lib/firedrill.js';\nimport cache from 'k6/x/cache';\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "lib", "firedrill.js"), []byte("import x from './other.js';\nexport const a = 1;\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "lib", "other.js"), []byte("export default 1;\n"), 0o644)
	return Options{
		Drill: "cache_format-flip", Script: filepath.Join(dir, "drill.js"), LibDir: filepath.Join(dir, "lib"),
		Profile: "protected", Seed: 7, Parallelism: 4, Image: "registry.example/firedrill-k6:v1",
		Endpoints:  map[string]string{"FIREDRILL_MEMCACHED": "mc-0:11211,mc-1:11211", "FIREDRILL_MYSQL_DSN": "u:p@tcp(db:3306)/x", "FIREDRILL_TOXIPROXY": "http://toxiproxy:8474"},
		Params:     map[string]string{"duration": "60"},
		ParamsJSON: `{"duration":60}`,
	}
}

func decode(t *testing.T, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

func TestManifestsValidateAgainstTestRunCRD(t *testing.T) {
	o := opts(t)
	dir := t.TempDir()
	paths, err := Write(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 5 {
		t.Fatalf("files: %v", paths)
	}
	doc := decode(t, filepath.Join(dir, "testrun.yaml"))
	for _, e := range Validate(crd(t), doc) {
		t.Error(e)
	}
	m := doc.(map[string]any)
	if m["apiVersion"] != "k6.io/v1alpha1" || m["kind"] != "TestRun" {
		t.Errorf("apiVersion/kind: %v %v", m["apiVersion"], m["kind"])
	}
	spec := m["spec"].(map[string]any)
	if spec["parallelism"] != 4 {
		t.Errorf("parallelism %v", spec["parallelism"])
	}
	cmRef := spec["script"].(map[string]any)["configMap"].(map[string]any)
	if cmRef["name"] != "firedrill-cache-format-flip" || cmRef["file"] != "cache_format-flip.js" {
		t.Errorf("script %v", cmRef)
	}
	runner := spec["runner"].(map[string]any)
	if runner["image"] != o.Image {
		t.Errorf("image %v", runner["image"])
	}
	env := map[string]string{}
	for i, e := range runner["env"].([]any) {
		em := e.(map[string]any)
		if i == 0 && em["name"] != "POD_NAME" {
			t.Errorf("POD_NAME must come first, got %v", em["name"])
		}
		if v, ok := em["value"].(string); ok {
			env[em["name"].(string)] = v
		}
	}
	for k, want := range map[string]string{
		"FIREDRILL_MEMCACHED": "mc-0:11211,mc-1:11211", "FIREDRILL_TOXIPROXY": "http://toxiproxy:8474",
		"FIREDRILL_PROFILE": "protected", "FIREDRILL_SEED": "7", "FIREDRILL_DURATION": "60", "FIREDRILL_PARAMS": `{"duration":60}`,
		"FIREDRILL_GENERATORS": "4", "FIREDRILL_HDR_OUT": "/results/$(POD_NAME)-histograms.ndjson",
	} {
		if env[k] != want {
			t.Errorf("env %s = %q, want %q", k, env[k], want)
		}
	}
	if _, ok := env["FIREDRILL_GENERATOR"]; ok {
		t.Error("FIREDRILL_GENERATOR must not be set: the runners share one env")
	}
	args := spec["arguments"].(string)
	for _, want := range []string{"--out json=/results/$(POD_NAME)-k6-samples.json.gz", "--summary-export /results/$(POD_NAME)-k6-summary.json"} {
		if !strings.Contains(args, want) {
			t.Errorf("arguments %q lack %q", args, want)
		}
	}

	// The ConfigMap holds the script with its lib imports rewritten to flat keys.
	cm := decode(t, filepath.Join(dir, "configmap.yaml")).(map[string]any)
	data := cm["data"].(map[string]any)
	if s := data["cache_format-flip.js"].(string); !strings.Contains(s, "'./lib_firedrill.js'") || !strings.Contains(s, "'k6/x/cache'") {
		t.Errorf("script imports not rewritten: %s", s)
	}
	if s := data["lib_firedrill.js"].(string); !strings.Contains(s, "'./lib_other.js'") {
		t.Errorf("lib imports not rewritten: %s", s)
	}
	if _, ok := data["lib_other.js"]; !ok {
		t.Error("lib_other.js missing")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if !strings.Contains(string(b), "go build") || !strings.Contains(string(b), "./cmd/k6") {
		t.Errorf("Dockerfile does not build cmd/k6:\n%s", b)
	}
}

func TestValidatorRejectsBadTestRuns(t *testing.T) {
	s := crd(t)
	good := func() map[string]any {
		return TestRun(Options{Drill: "d", Parallelism: 2, Image: "i", Profile: "p"})
	}
	// A round trip through YAML gives the types a real document has.
	rt := func(m map[string]any) any {
		b, _ := yaml.Marshal(m)
		var doc any
		yaml.Unmarshal(b, &doc)
		return doc
	}
	if errs := Validate(s, rt(good())); len(errs) > 0 {
		t.Fatalf("good TestRun: %v", errs)
	}
	cases := map[string]struct {
		change func(m map[string]any)
		want   string
	}{
		"unknown spec field":   {func(m map[string]any) { m["spec"].(map[string]any)["parallelizm"] = 2 }, `unknown field "parallelizm"`},
		"missing parallelism":  {func(m map[string]any) { delete(m["spec"].(map[string]any), "parallelism") }, `required field "parallelism"`},
		"missing script":       {func(m map[string]any) { delete(m["spec"].(map[string]any), "script") }, `required field "script"`},
		"parallelism a string": {func(m map[string]any) { m["spec"].(map[string]any)["parallelism"] = "4" }, "want an integer"},
		"parallelism too big":  {func(m map[string]any) { m["spec"].(map[string]any)["parallelism"] = int64(1) << 40 }, "int32"},
		"configMap without name": {func(m map[string]any) {
			m["spec"].(map[string]any)["script"] = map[string]any{"configMap": map[string]any{"file": "x.js"}}
		}, `required field "name"`},
		"env without name": {func(m map[string]any) {
			r := m["spec"].(map[string]any)["runner"].(map[string]any)
			r["env"] = append(r["env"].([]any), map[string]any{"value": "x"})
		}, `required field "name"`},
		"env value a number": {func(m map[string]any) {
			r := m["spec"].(map[string]any)["runner"].(map[string]any)
			r["env"] = append(r["env"].([]any), map[string]any{"name": "X", "value": 3})
		}, "want a string"},
		"unknown runner field": {func(m map[string]any) { m["spec"].(map[string]any)["runner"].(map[string]any)["cmd"] = "k6" }, `unknown field "cmd"`},
		"cleanup not post":     {func(m map[string]any) { m["spec"].(map[string]any)["cleanup"] = "pre" }, "not one of"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			m := good()
			c.change(m)
			errs := Validate(s, rt(m))
			if len(errs) == 0 {
				t.Fatalf("no error, want %q", c.want)
			}
			var all []string
			for _, e := range errs {
				all = append(all, e.Error())
			}
			if !strings.Contains(strings.Join(all, "\n"), c.want) {
				t.Errorf("errors %q lack %q", all, c.want)
			}
		})
	}
}
