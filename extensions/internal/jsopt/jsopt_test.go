package jsopt

import (
	"math"
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

// Each reader accepts its kind and names the option when given another.
func TestValues(t *testing.T) {
	ok := func(got, want any, err error) {
		t.Helper()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("got %#v (%v), want %#v", got, err, want)
		}
	}
	fails := func(err error, want string) {
		t.Helper()
		if err == nil || err.Error() != want {
			t.Errorf("err %v, want %q", err, want)
		}
	}

	s, err := String("name", "slow")
	ok(s, "slow", err)
	_, err = String("name", int64(1))
	fails(err, `option "name" must be a string`)

	f, err := Number("toxicity", int64(1))
	ok(f, 1.0, err)
	f, err = Number("toxicity", 0.25)
	ok(f, 0.25, err)
	_, err = Number("toxicity", "1")
	fails(err, `option "toxicity" must be a number`)

	n, err := NonNegativeInt("rows", int64(300))
	ok(n, 300, err)
	n, err = NonNegativeInt("rows", 2.0)
	ok(n, 2, err)
	n, err = NonNegativeInt("rows", int64(0))
	ok(n, 0, err)
	for _, bad := range []any{int64(-1), -2.0, 1.5, math.NaN(), "3", nil} {
		_, err = NonNegativeInt("rows", bad)
		fails(err, `option "rows" must be a non-negative integer`)
	}

	b, err := Bool("detached", true)
	ok(b, true, err)
	_, err = Bool("detached", "true")
	fails(err, `option "detached" must be a boolean`)

	l, err := Strings("types", []any{"INT", "BIGINT NOT NULL"})
	ok(l, []string{"INT", "BIGINT NOT NULL"}, err)
	l, err = Strings("types", []any{})
	ok(l, []string{}, err)
	_, err = Strings("types", "INT")
	fails(err, `option "types" must be an array of strings`)
	_, err = Strings("types", []any{"INT", int64(1)})
	fails(err, `option "types" must be an array of strings`)

	o, err := Object("attributes", map[string]any{"latency": int64(5)})
	ok(o, map[string]any{"latency": int64(5)}, err)
	_, err = Object("attributes", []any{})
	fails(err, `option "attributes" must be an object`)
}
