package reports

import (
	"encoding/json"
	"errors"
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
