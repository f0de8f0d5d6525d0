package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecodeResultMalformed(t *testing.T) {
	good, err := json.Marshal(fixture("ddl-storm", "protected", 10, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"bad JSON", []byte(`{"schema_version": 1,`), "invalid JSON"},
		{"not an object", []byte(`[1,2]`), "invalid JSON"},
		{"no schema_version", edit(func(m map[string]any) { delete(m, "schema_version") }), "no schema_version field"},
		{"wrong version", edit(func(m map[string]any) { m["schema_version"] = 3 }), "unsupported result schema version 3"},
		{"bad check", edit(func(m map[string]any) {
			m["checks"] = []any{map[string]any{"name": "x", "kind": "guess", "phase": "before", "expr": "a > 1", "outcome": "pass"}}
		}), `kind "guess"`},
		{"unknown field", edit(func(m map[string]any) { m["latency"] = 3 }), `unknown field "latency"`},
		{"wrong type", edit(func(m map[string]any) { m["seed"] = "x" }), "malformed result"},
		{"no drill", edit(func(m map[string]any) { m["drill"] = "" }), "drill is empty"},
		{"bad verdict", edit(func(m map[string]any) { m["verdict"] = map[string]any{"reached": "maybe"} }), `unknown verdict "maybe"`},
		{"bad event", edit(func(m map[string]any) {
			m["events"] = []any{map[string]any{"at": 1, "fault": "latency", "action": "toggle"}}
		}), `action "toggle"`},
		{"bad series value", edit(func(m map[string]any) {
			m["series"] = []any{map[string]any{"metric": "op_rate", "step": 1, "values": []any{"fast"}}}
		}), "malformed result"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeResult("runs/r1.json", tc.in)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.HasPrefix(err.Error(), "runs/r1.json: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want it to name the file and say %q", err, tc.want)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
	if _, err := DecodeResult("x", edit(func(m map[string]any) { m["schema_version"] = 7 })); !errors.Is(err, ErrSchema) {
		t.Errorf("wrong version: %v is not ErrSchema", err)
	}
}

func TestResultRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := fixture("ddl-storm", "unprotected", 30, 1, 1)
	r.Series[0].Values[3] = NaN()
	path := filepath.Join(dir, "sub", "result.json")
	if err := WriteResult(path, r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResult(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key() != "ddl-storm/unprotected" || len(got.Series) != len(r.Series) || got.Series[0].Values[3] == got.Series[0].Values[3] {
		t.Errorf("round trip lost data: key %s, NaN kept: %v", got.Key(), got.Series[0].Values[3])
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	if err := WriteFileAtomic(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("content %q, want new", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A failed write leaves the old file whole: the target is a directory
	// here, so the rename fails after the data was written.
	sub := filepath.Join(dir, "taken")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(sub, []byte("data")); err == nil {
		t.Error("write over a non-empty directory: want error")
	}
	entries, _ = os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left after a failed write", e.Name())
		}
	}
}

// A result of schema version 1 (verdicts from k6 thresholds, no checks,
// no kinds of phase, no servers' counters) still reads, and its report
// shows the client's charts, without charts of servers it never sampled.
func TestSchema1StillReads(t *testing.T) {
	r, err := ReadResult(filepath.Join("testdata", "v1-result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.SchemaVersion != 1 || r.Sampling != nil || len(r.Checks) != 0 || r.Verdict.Reached != Broken || len(r.Phases) != 2 {
		t.Errorf("read %+v", r)
	}
	if v := r.Find(SeriesOpRate)[0].Values[4]; !math.IsNaN(float64(v)) {
		t.Errorf("a null value read as %v, want NaN", v)
	}
	var buf bytes.Buffer
	if err := RenderHTML(&buf, []*Result{r}); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{`id="hot-key-expiry-unprotected-ops"`, `id="hot-key-expiry-unprotected-dbq"`, `max&lt;500`, `<dt>server counters</dt><dd>not sampled</dd>`} {
		if !strings.Contains(html, want) {
			t.Errorf("the report of a version 1 result lacks %q", want)
		}
	}
	if strings.Contains(html, `-unprotected-db-server"`) || strings.Contains(html, `-unprotected-cpu"`) {
		t.Error("a version 1 result has charts of the servers' counters")
	}
}

// A baseline saved before schema 2 still compares with a head written
// now: the metrics both carry are compared from each side's values, the
// verdicts too, and nothing of the head's servers' counters is asked of
// the old side.
func TestSchema1ComparesWithSchema2(t *testing.T) {
	old, err := ReadResult(filepath.Join("testdata", "v1-result.json"))
	if err != nil {
		t.Fatal(err)
	}
	head := fixture(old.Drill, old.Profile, 60, 7, 1)
	head.SchemaVersion = SchemaVersion
	c, err := Compare([]*Result{old}, []*Result{head}, CompareOptions{})
	if err != nil {
		t.Fatalf("compare v1 with v%d: %v", SchemaVersion, err)
	}
	both := 0
	for _, m := range c.Metrics {
		if len(m.Base) == 1 && len(m.Head) == 1 {
			both++
		}
	}
	if both == 0 || len(c.Verdicts) != 1 {
		t.Errorf("metrics with a value on both sides %d of %d, verdicts %d; want some, and one verdict:\n%+v", both, len(c.Metrics), len(c.Verdicts), c.Metrics)
	}
}
