package nightly

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// workflow is the part of a GitHub Actions workflow this test reads.
type workflow struct {
	On   map[string]any `yaml:"on"`
	Jobs map[string]struct {
		TimeoutMinutes int               `yaml:"timeout-minutes"`
		Env            map[string]string `yaml:"env"`
		Steps          []struct {
			Name string         `yaml:"name"`
			If   string         `yaml:"if"`
			Uses string         `yaml:"uses"`
			Run  string         `yaml:"run"`
			With map[string]any `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// The workflow cannot run here (no GitHub), so this test holds it to what
// can be checked: it calls only make targets the Makefile has, it runs on a
// schedule and on demand, it always removes leftovers, and every file it
// uploads is one a nightly writes.
func TestNightlyWorkflowMatchesMakefileAndOutputs(t *testing.T) {
	raw, err := os.ReadFile("../.github/workflows/nightly-chaos.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf workflow
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatalf("workflow is not valid YAML: %v", err)
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, trigger := range []string{"schedule", "workflow_dispatch"} {
		if _, ok := wf.On[trigger]; !ok {
			t.Errorf("workflow has no %s trigger", trigger)
		}
	}
	job, ok := wf.Jobs["nightly"]
	if !ok {
		t.Fatal("workflow has no nightly job")
	}
	if job.TimeoutMinutes < 45 {
		t.Errorf("timeout-minutes %d is under the nightly's 45-minute budget", job.TimeoutMinutes)
	}
	out := job.Env["NIGHTLY_OUT"]
	if out == "" {
		t.Fatal("the nightly job sets no NIGHTLY_OUT")
	}
	// "make a b VAR=x": every word after make up to the first that is not a
	// target name.
	targetName := regexp.MustCompile(`^[a-z0-9-]+$`)
	targets := map[string]bool{}
	var uploads []string
	envDownAlways := false
	for _, s := range job.Steps {
		for _, line := range strings.Split(s.Run, "\n") {
			words := strings.Fields(line)
			for i, w := range words {
				if w != "make" {
					continue
				}
				for _, tg := range words[i+1:] {
					if !targetName.MatchString(tg) {
						break
					}
					targets[tg] = true
					if tg == "env-down" && strings.Contains(s.If, "always()") {
						envDownAlways = true
					}
				}
			}
		}
		if strings.HasPrefix(s.Uses, "actions/upload-artifact") {
			p, _ := s.With["path"].(string)
			for _, line := range strings.Fields(p) {
				if rel, ok := strings.CutPrefix(line, out+"/"); ok {
					uploads = append(uploads, strings.TrimSuffix(rel, "/"))
				}
			}
		}
	}
	for _, want := range []string{"nightly", "build", "images", "env-down"} {
		if !targets[want] {
			t.Errorf("workflow never calls make %s", want)
		}
	}
	for tg := range targets {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tg) + `:`).Match(mk) {
			t.Errorf("workflow calls make %s, which the Makefile does not define", tg)
		}
	}
	if !envDownAlways {
		t.Error("make env-down does not run with if: always(): a failed nightly could leave containers")
	}
	if len(uploads) < 5 {
		t.Fatalf("uploads under %s: %v, want the reports and results", out, uploads)
	}
	// A nightly with a baseline writes every file the workflow uploads.
	root := t.TempDir()
	base, head := filepath.Join(root, "base"), filepath.Join(root, "head")
	run := fakeRun("v1", func(string, int) float64 { return 10 }, func(string, int) bool { return true })
	if _, err := Run(context.Background(), Options{Drills: drills, Repeats: 1, OutDir: base, Run: run}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Options{Drills: drills, Repeats: 1, OutDir: head, Baseline: base, Run: run}); err != nil {
		t.Fatal(err)
	}
	for _, u := range uploads {
		if _, err := os.Stat(filepath.Join(head, u)); err != nil {
			t.Errorf("the workflow uploads %s/%s, which a nightly does not write: %v", out, u, err)
		}
	}
}
