// Package k8s writes what the Grafana k6-operator needs to run a drill at
// scale: a ConfigMap with the drill's script and scenarios/lib, a TestRun
// (k6.io/v1alpha1) with spec.parallelism runners of firedrill's own k6
// image pointed at endpoints the user gives, a PersistentVolumeClaim the
// runners write their k6 files to, and a Dockerfile for that k6 image.
//
// The k6-operator starts every runner paused with its own execution
// segment, runs setup() once and releases them together, the same as
// `firedrill run --generators N` does locally; `firedrill merge` turns the
// runners' files into one result.
package k8s

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/firedrill-dev/firedrill/envvar"
)

// Options describe the manifests.
type Options struct {
	Drill        string            // drill name
	Script       string            // path of scenarios/<drill>.js
	LibDir       string            // scenarios/lib
	Profile      string            // FIREDRILL_PROFILE
	Seed         int64             // FIREDRILL_SEED
	Parallelism  int               // runners
	Namespace    string            // "" for the current one
	Image        string            // the custom k6 image
	Endpoints    map[string]string // FIREDRILL_* variable -> value (memcached, DSNs, toxiproxy)
	Params       map[string]string // every drill parameter, resolved, as FIREDRILL_<NAME>
	ParamsJSON   string            // FIREDRILL_PARAMS: the same, typed, which param() reads
	Storage      string            // size of the results claim, such as 1Gi
	StorageClass string            // "" for the cluster default
}

// ResultsMount is where each runner writes its k6 files.
const ResultsMount = "/results"

// Name is the base name of every object, e.g. firedrill-pipeline.
func (o Options) Name() string {
	return "firedrill-" + dns1123(o.Drill)
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

func dns1123(s string) string {
	s = strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// libKey is the ConfigMap key of a file of scenarios/lib: ConfigMap keys
// cannot hold "/", so lib/firedrill.js becomes lib_firedrill.js and the
// script's imports are rewritten to match (the operator mounts every key
// as a file of /test/).
func libKey(name string) string { return "lib_" + name }

var libImport = regexp.MustCompile(`(['"])\./lib/([A-Za-z0-9_.-]+)(['"])`)

// ConfigMap returns the ConfigMap holding the script (key <drill>.js) and
// every file of the lib folder.
func ConfigMap(o Options) (map[string]any, error) {
	script, err := os.ReadFile(o.Script)
	if err != nil {
		return nil, fmt.Errorf("k8s: script: %w", err)
	}
	data := map[string]any{}
	rewrite := func(b []byte) string {
		return libImport.ReplaceAllString(string(b), "${1}./"+libKey("${2}")+"${3}")
	}
	data[o.Drill+".js"] = rewrite(script)
	libs, _ := filepath.Glob(filepath.Join(o.LibDir, "*.js"))
	sort.Strings(libs)
	for _, l := range libs {
		b, err := os.ReadFile(l)
		if err != nil {
			return nil, fmt.Errorf("k8s: lib: %w", err)
		}
		// lib files import each other as './x.js'.
		data[libKey(filepath.Base(l))] = regexp.MustCompile(`(['"])\./([A-Za-z0-9_-]+\.js)(['"])`).
			ReplaceAllString(string(b), "${1}./"+libKey("${2}")+"${3}")
	}
	return object("v1", "ConfigMap", o, map[string]any{"data": data}), nil
}

func object(apiVersion, kind string, o Options, rest map[string]any) map[string]any {
	meta := map[string]any{"name": o.Name(), "labels": map[string]any{"app.kubernetes.io/part-of": "firedrill", "firedrill.drill": dns1123(o.Drill)}}
	if o.Namespace != "" {
		meta["namespace"] = o.Namespace
	}
	m := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
	for k, v := range rest {
		m[k] = v
	}
	return m
}

// PVC returns the claim the runners write their k6 files to.
func PVC(o Options) map[string]any {
	spec := map[string]any{
		"accessModes": []any{"ReadWriteMany"},
		"resources":   map[string]any{"requests": map[string]any{"storage": orDefault(o.Storage, "1Gi")}},
	}
	if o.StorageClass != "" {
		spec["storageClassName"] = o.StorageClass
	}
	return object("v1", "PersistentVolumeClaim", o, map[string]any{"spec": spec})
}

// TestRun returns the k6-operator TestRun.
func TestRun(o Options) map[string]any {
	env := []any{
		// First: the others refer to it as $(POD_NAME).
		map[string]any{"name": "POD_NAME", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.name"}}},
		map[string]any{"name": "K6_NO_USAGE_REPORT", "value": "true"},
		map[string]any{"name": envvar.Profile, "value": o.Profile},
		map[string]any{"name": envvar.Seed, "value": strconv.FormatInt(o.Seed, 10)},
		map[string]any{"name": envvar.Generators, "value": strconv.Itoa(o.Parallelism)},
		map[string]any{"name": envvar.HDROut, "value": ResultsMount + "/$(POD_NAME)-histograms.ndjson"},
	}
	add := func(m map[string]string, prefix bool) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			name := k
			if prefix {
				name = envvar.ParamPrefix + strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
			}
			env = append(env, map[string]any{"name": name, "value": m[k]})
		}
	}
	add(o.Endpoints, false)
	if o.ParamsJSON != "" {
		env = append(env, map[string]any{"name": envvar.Params, "value": o.ParamsJSON})
	}
	add(o.Params, true)
	args := strings.Join([]string{
		"--out json=" + ResultsMount + "/$(POD_NAME)-k6-samples.json.gz",
		"--summary-export " + ResultsMount + "/$(POD_NAME)-k6-summary.json",
		"--tag generator=$(POD_NAME)",
	}, " ")
	spec := map[string]any{
		"parallelism": o.Parallelism,
		"separate":    false,
		"arguments":   args,
		"script":      map[string]any{"configMap": map[string]any{"name": o.Name(), "file": o.Drill + ".js"}},
		"runner": map[string]any{
			"image":           o.Image,
			"imagePullPolicy": "IfNotPresent",
			"env":             env,
			"metadata":        map[string]any{"labels": map[string]any{"app.kubernetes.io/part-of": "firedrill"}},
			"volumes": []any{map[string]any{"name": "results",
				"persistentVolumeClaim": map[string]any{"claimName": o.Name()}}},
			"volumeMounts": []any{map[string]any{"name": "results", "mountPath": ResultsMount}},
		},
	}
	return object("k6.io/v1alpha1", "TestRun", o, map[string]any{"spec": spec})
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Dockerfile builds firedrill's k6 (cmd/k6: k6 v2 with every extension)
// in a Go builder stage; build it from the repository root.
const Dockerfile = `# firedrill's k6: k6 v2 with every firedrill extension compiled in.
# Build from the repository root:
#   docker build -f DIR/Dockerfile -t IMAGE .
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/k6 ./cmd/k6

# The k6-operator runs k6 through a shell: the base needs /bin/sh.
FROM ${BASE}
COPY --from=build /out/k6 /usr/bin/k6
RUN mkdir -p /results && chmod 0777 /results
USER 65534
ENTRYPOINT ["k6"]
`

// Write writes configmap.yaml, pvc.yaml, testrun.yaml, Dockerfile and
// kustomization.yaml into dir and returns their paths.
func Write(dir string, o Options) ([]string, error) {
	if o.Parallelism < 1 {
		return nil, fmt.Errorf("k8s: parallelism must be at least 1, got %d", o.Parallelism)
	}
	if o.Image == "" {
		return nil, fmt.Errorf("k8s: the runner image is required")
	}
	cm, err := ConfigMap(o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("k8s: %w", err)
	}
	files := []struct {
		name string
		obj  any
	}{
		{"configmap.yaml", cm},
		{"pvc.yaml", PVC(o)},
		{"testrun.yaml", TestRun(o)},
		{"kustomization.yaml", map[string]any{
			"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
			"resources": []any{"configmap.yaml", "pvc.yaml", "testrun.yaml"}}},
	}
	var paths []string
	for _, f := range files {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		err := enc.Encode(f.obj)
		b := buf.Bytes()
		if err != nil {
			return nil, fmt.Errorf("k8s: %s: %w", f.name, err)
		}
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, fmt.Errorf("k8s: %w", err)
		}
		paths = append(paths, p)
	}
	p := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(p, []byte(Dockerfile), 0o644); err != nil {
		return nil, fmt.Errorf("k8s: %w", err)
	}
	return append(paths, p), nil
}
