package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/reports"
)

func TestFidelityWritesTheTableIntoTheReadme(t *testing.T) {
	dir := t.TempDir()
	obs, ref := reports.Float(261), reports.Float(11)
	r := &reports.Result{Drill: "hot-key-expiry", Profile: "unprotected", Complete: true, Start: time.Unix(1e9, 0), End: time.Unix(1e9+60, 0),
		Verdict: reports.Verdict{Expected: reports.Broken, Reached: reports.Broken, Pass: true},
		Checks: []reports.Check{{Name: "burst", Kind: reports.Signature, Phase: "hot_set_expiry:none",
			Expr: "db_rate_peak >= 10 x db_rate@before", Observed: &obs, Reference: &ref, Relative: "db_rate@before",
			Outcome: reports.Observed, Incident: "000_e76083ecc6911798.txt:5", Figure: "an extremely high query load"}}}
	nightly := filepath.Join(dir, "nightly", "results")
	if err := os.MkdirAll(nightly, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := reports.WriteResult(filepath.Join(nightly, "hot-key-expiry-unprotected-1.json"), r); err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(dir, "README.md")
	before := "# x\n" + reports.FidelityBegin + "\nold\n" + reports.FidelityEnd + "\nrest\n"
	if err := os.WriteFile(readme, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	// a nightly's folder stands for its results/
	out, _, err := run(t, "fidelity", filepath.Join(dir, "nightly"), "--readme", readme, "-o", filepath.Join(dir, "f.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "| hot-key-expiry | unprotected (broken) | burst | an extremely high query load (000_e76083ecc6911798.txt:5) | db_rate_peak 261 in hot_set_expiry:none = 23.7 x db_rate@before 11 | observed |") {
		t.Errorf("table:\n%s", out)
	}
	got, _ := os.ReadFile(readme)
	if strings.Contains(string(got), "old") || !strings.Contains(string(got), out) || !strings.HasSuffix(string(got), reports.FidelityEnd+"\nrest\n") {
		t.Errorf("README after:\n%s", got)
	}
	if f, _ := os.ReadFile(filepath.Join(dir, "f.md")); string(f) != out {
		t.Errorf("-o wrote %q, want the table printed", f)
	}

	// bad input: one clear error, and the README left as it was
	if err := os.WriteFile(readme, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, "fidelity", filepath.Join(dir, "nightly"), "--readme", readme)
	if err == nil || !strings.Contains(err.Error(), "no fidelity table markers") {
		t.Errorf("README without markers: %v", err)
	}
	if got, _ := os.ReadFile(readme); string(got) != "no markers\n" {
		t.Errorf("README changed on error: %q", got)
	}
	if _, _, err := run(t, "fidelity"); err == nil || !strings.Contains(err.Error(), "no results given") {
		t.Errorf("no arguments: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "fidelity", bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("malformed result: %v", err)
	}
	r.Checks[0].Figure = ""
	plain := filepath.Join(dir, "plain.json")
	if err := reports.WriteResult(plain, r); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "fidelity", plain); err == nil || !strings.Contains(err.Error(), "has a check with an incident figure") {
		t.Errorf("results without figures: %v", err)
	}
}
