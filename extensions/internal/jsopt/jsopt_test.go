package jsopt

import (
	"reflect"
	"testing"

	"github.com/grafana/sobek"
)

func TestOptions(t *testing.T) {
	rt := sobek.New()
	v, err := rt.RunString(`({ name: "slow", latency: 100, toxicity: 0.5, on: true, types: ["INT"], attributes: { a: 1 } })`)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Options(rt, v)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name": "slow", "latency": int64(100), "toxicity": 0.5, "on": true,
		"types": []any{"INT"}, "attributes": map[string]any{"a": int64(1)},
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %#v\nwant %#v", m, want)
	}

	for _, tc := range []struct {
		name string
		v    sobek.Value
		want string
	}{
		{"no argument", nil, "missing options object"},
		{"undefined", sobek.Undefined(), "missing options object"},
		{"null", sobek.Null(), "missing options object"},
		{"number", rt.ToValue(3), "options must be an object"},
		{"array", rt.ToValue([]any{1, 2}), "options must be an object"},
	} {
		if _, err := Options(rt, tc.v); err == nil || err.Error() != tc.want {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

// Decode goes from the JS object to the struct, with the decoder's errors.
func TestDecode(t *testing.T) {
	rt := sobek.New()
	var o struct {
		Name     string         `opt:"name"`
		Rows     uint           `opt:"rows"`
		Toxicity *float64       `opt:"toxicity"`
		Attrs    map[string]any `opt:"attributes"`
	}
	v, err := rt.RunString(`({ name: "slow", rows: 300, toxicity: 0.5, attributes: { latency: 100 } })`)
	if err != nil {
		t.Fatal(err)
	}
	if err := Decode(rt, v, &o); err != nil || o.Name != "slow" || o.Rows != 300 || o.Toxicity == nil || *o.Toxicity != 0.5 ||
		!reflect.DeepEqual(o.Attrs, map[string]any{"latency": int64(100)}) {
		t.Fatalf("%+v (%v)", o, err)
	}
	for _, tc := range []struct{ js, want string }{
		{`({ rows: -1 })`, "option rows: must be a non-negative integer, got number -1"},
		{`({ rows: 2.5 })`, "option rows: must be a non-negative integer, got number 2.5"},
		{`({ toxicity: NaN })`, "option toxicity: must be a finite number, got number NaN"},
		{`({ nme: "x" })`, "option nme: unknown (known: attributes, name, rows, toxicity)"},
		{`(undefined)`, "missing options object"},
	} {
		v, err := rt.RunString(tc.js)
		if err != nil {
			t.Fatal(err)
		}
		if err := Decode(rt, v, &o); err == nil || err.Error() != tc.want {
			t.Errorf("%s: err %v, want %q", tc.js, err, tc.want)
		}
	}
}
