package opts

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The structs below are shaped like traffic.Config, the largest options
// object, to show the decoder can carry it: nested protections, stages,
// durations, enums, comma lists, an embedded share mix, a value that is a
// boolean or a number.

type stage struct {
	Duration time.Duration `opt:"duration,required"`
	Target   float64       `opt:"target,required"`
}

type protections struct {
	Coalesce      bool          `opt:"coalesce"`
	FillLockWait  time.Duration `opt:"fillLockWait"`
	FillLockTries int           `opt:"fillLockTries"`
	TTLJitter     float64       `opt:"ttlJitter"`
}

type mix struct {
	WriteFraction  float64 `opt:"writeFraction"`
	LookupFraction float64 `opt:"lookupFraction"`
}

// jitter is retryJitter: true is full jitter (1), false none, or a fraction.
type jitter float64

func (j *jitter) UnmarshalOption(v any) error {
	switch x := v.(type) {
	case bool:
		*j = 0
		if x {
			*j = 1
		}
		return nil
	case float64:
		if x >= 0 && x <= 1 {
			*j = jitter(x)
			return nil
		}
	}
	return fmt.Errorf("must be a boolean or a number in [0, 1], got %v", v)
}

type retry struct {
	Retries int    `opt:"retries"`
	Jitter  jitter `opt:"retryJitter"`
}

type replay struct {
	CacheAddrs  []string       `opt:"memcached,comma"`
	DSN         string         `opt:"dsn"`
	Rate        float64        `opt:"rate"`
	Duration    *time.Duration `opt:"duration"` // nil: derive from the stages
	Stages      []stage        `opt:"stages"`
	Arrivals    string         `opt:"arrivals" enum:"uniform,poisson"`
	Rows        uint64         `opt:"rows"`
	HotSet      int            `opt:"hotSet"`
	Format      string         `opt:"format" enum:"legacy,current"`
	mix         `opt:",inline"`
	Retry       retry       `opt:",inline"`
	Protections protections `opt:"protections"`
	CacheMux    bool        `opt:"cacheMux"`
	untagged    int
}

func defaults() replay {
	return replay{
		CacheAddrs: []string{"env:1"}, Rate: 1000, Arrivals: "uniform", Rows: 1000, HotSet: 100, Format: "legacy",
		Protections: protections{FillLockWait: 50 * time.Millisecond, FillLockTries: 3},
		untagged:    7,
	}
}

const replayKnown = "known: arrivals, cacheMux, dsn, duration, format, hotSet, lookupFraction, memcached, protections, rate, retries, retryJitter, rows, stages, writeFraction"

// A full options object lands in the fields; what it leaves out keeps its
// default, in nested objects too.
func TestDecodeReplayShaped(t *testing.T) {
	got := defaults()
	err := Decode(map[string]any{
		"memcached": "a:1, b:2,", "dsn": "u@tcp(db)/x", "rate": int64(2000),
		"stages": []any{
			map[string]any{"duration": "10s", "target": int64(1100)},
			map[string]any{"duration": float64(5000), "target": 0.5},
		},
		"arrivals": "poisson", "rows": float64(5e9), "hotSet": 3.0, "format": "current",
		"writeFraction": 0.25, "retries": int64(2), "retryJitter": true,
		"protections": map[string]any{"coalesce": true, "ttlJitter": 0.1},
		"cacheMux":    true,
	}, &got)
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.CacheAddrs = []string{"a:1", "b:2"}
	want.DSN, want.Rate = "u@tcp(db)/x", 2000
	want.Stages = []stage{{10 * time.Second, 1100}, {5 * time.Second, 0.5}}
	want.Arrivals, want.Rows, want.HotSet, want.Format = "poisson", 5e9, 3, "current"
	want.WriteFraction = 0.25
	want.Retry = retry{Retries: 2, Jitter: 1}
	want.Protections.Coalesce, want.Protections.TTLJitter = true, 0.1
	want.CacheMux = true
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got.Duration != nil {
		t.Errorf("duration not given, yet set to %v", *got.Duration)
	}

	d := 90 * time.Second
	got = defaults()
	if err := Decode(map[string]any{"duration": "1m30s", "memcached": []any{"x:1"}}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Duration == nil || *got.Duration != d || !reflect.DeepEqual(got.CacheAddrs, []string{"x:1"}) {
		t.Errorf("duration %v, memcached %q", got.Duration, got.CacheAddrs)
	}

	got = defaults()
	if err := Decode(nil, &got); err != nil || !reflect.DeepEqual(got, defaults()) {
		t.Errorf("no options changed the defaults: %+v (%v)", got, err)
	}
}

// Every error is one line naming the option, what it must be and what it got.
func TestDecodeErrors(t *testing.T) {
	long := strings.Repeat("x", 60)
	for _, tc := range []struct {
		name string
		m    map[string]any
		want string
	}{
		{"unknown key", map[string]any{"rat": 5}, "option rat: unknown (" + replayKnown + ")"},
		{"unknown nested key", map[string]any{"protections": map[string]any{"lease": true}},
			"option protections.lease: unknown (known: coalesce, fillLockTries, fillLockWait, ttlJitter)"},
		{"unknown key in a list", map[string]any{"stages": []any{map[string]any{"duration": "1s", "target": 1, "rate": 2}}},
			"option stages[0].rate: unknown (known: duration, target)"},
		{"odd key quoted", map[string]any{"rate ": 5}, `option "rate ": unknown (` + replayKnown + ")"},
		{"empty key quoted", map[string]any{"": 5}, `option "": unknown (` + replayKnown + ")"},

		{"required in a list", map[string]any{"stages": []any{map[string]any{"duration": "1s", "target": 1}, map[string]any{"duration": "1s"}}},
			"option stages[1].target: required but not given"},

		{"string", map[string]any{"dsn": int64(5)}, "option dsn: must be a string, got number 5"},
		{"null", map[string]any{"dsn": nil}, "option dsn: must be a string, got null"},
		{"long string cut", map[string]any{"rate": long}, `option rate: must be a number, got string "` + strings.Repeat("x", 40) + `…"`},
		{"bool", map[string]any{"cacheMux": "yes"}, `option cacheMux: must be a boolean, got string "yes"`},
		{"number", map[string]any{"rate": "fast"}, `option rate: must be a number, got string "fast"`},
		{"NaN", map[string]any{"rate": math.NaN()}, "option rate: must be a finite number, got number NaN"},
		{"Inf", map[string]any{"writeFraction": math.Inf(1)}, "option writeFraction: must be a finite number, got number +Inf"},
		{"nested number", map[string]any{"protections": map[string]any{"ttlJitter": true}}, "option protections.ttlJitter: must be a number, got boolean true"},

		{"fraction is no int", map[string]any{"hotSet": 2.5}, "option hotSet: must be an integer, got number 2.5"},
		{"NaN is no int", map[string]any{"hotSet": math.NaN()}, "option hotSet: must be an integer, got number NaN"},
		{"Inf is no int", map[string]any{"hotSet": math.Inf(-1)}, "option hotSet: must be an integer, got number -Inf"},
		{"string is no int", map[string]any{"hotSet": "3"}, `option hotSet: must be an integer, got string "3"`},
		{"int out of range", map[string]any{"hotSet": 1e19}, "option hotSet: must be an integer in [-9223372036854775808, 9223372036854775807], got number 1e+19"},
		{"negative uint", map[string]any{"rows": int64(-1)}, "option rows: must be a non-negative integer, got number -1"},
		{"negative float uint", map[string]any{"rows": -3.0}, "option rows: must be a non-negative integer, got number -3"},
		{"fraction is no uint", map[string]any{"rows": 1.5}, "option rows: must be a non-negative integer, got number 1.5"},
		{"uint out of range", map[string]any{"rows": 1e20}, "option rows: must be an integer in [0, 18446744073709551615], got number 1e+20"},

		{"bad duration string", map[string]any{"duration": "soon"}, `option duration: must be a duration such as "30s" or a number of milliseconds, got string "soon"`},
		{"duration of a bool", map[string]any{"protections": map[string]any{"fillLockWait": false}},
			`option protections.fillLockWait: must be a duration such as "30s" or a number of milliseconds, got boolean false`},
		{"NaN duration", map[string]any{"duration": math.NaN()}, `option duration: must be a duration such as "30s" or a number of milliseconds, got number NaN`},
		{"overlong duration", map[string]any{"duration": 1e300}, `option duration: must be a duration such as "30s" or a number of milliseconds, got number 1e+300`},

		{"enum", map[string]any{"arrivals": "bursty"}, `option arrivals: must be one of uniform, poisson, got string "bursty"`},
		{"enum wrong type", map[string]any{"format": int64(7)}, "option format: must be one of legacy, current, got number 7"},

		{"object", map[string]any{"protections": []any{}}, "option protections: must be an object, got a list"},
		{"list of objects", map[string]any{"stages": "up"}, `option stages: must be a list of objects, got string "up"`},
		{"element of a list of objects", map[string]any{"stages": []any{int64(1)}}, "option stages[0]: must be an object, got number 1"},
		{"list of strings", map[string]any{"memcached": int64(5)}, "option memcached: must be a list of strings or a comma-separated string, got number 5"},
		{"element of a list of strings", map[string]any{"memcached": []any{"a:1", int64(1)}}, "option memcached[1]: must be a string, got number 1"},
		{"own syntax", map[string]any{"retryJitter": "full"}, "option retryJitter: must be a boolean or a number in [0, 1], got full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			err := Decode(tc.m, &c)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

// Of several mistakes the first in key order is reported, whatever order
// the map iterates in.
func TestDecodeReportsTheFirstKeyInOrder(t *testing.T) {
	m := map[string]any{"zeta": 1, "rate": "x", "hotSet": 1.5, "alpha": 1, "dsn": 1, "rows": -1}
	for range 50 {
		c := defaults()
		if err := Decode(m, &c); err == nil || !strings.HasPrefix(err.Error(), "option alpha: unknown") {
			t.Fatalf("err %v, want the one about alpha", err)
		}
	}
}

// Unknown keys and type errors come before missing required ones, and a
// required option given as 0 counts as given.
func TestDecodeRequired(t *testing.T) {
	var a struct {
		Fraction float64 `opt:"fraction,required"`
		Name     string  `opt:"name"`
	}
	if err := Decode(map[string]any{"name": "flip"}, &a); err == nil || err.Error() != "option fraction: required but not given" {
		t.Errorf("missing: %v", err)
	}
	if err := Decode(map[string]any{"fraktion": 0.5}, &a); err == nil || err.Error() != "option fraktion: unknown (known: fraction, name)" {
		t.Errorf("typo: %v", err)
	}
	if err := Decode(map[string]any{"fraction": int64(0)}, &a); err != nil || a.Fraction != 0 {
		t.Errorf("zero is given: %v", err)
	}
}

func TestDecodeValues(t *testing.T) {
	type inner struct {
		N int `opt:"n"`
		M int `opt:"m"`
	}
	type all struct {
		D        time.Duration   `opt:"d"`
		I8       int8            `opt:"i8"`
		I64      int64           `opt:"i64"`
		U8       uint8           `opt:"u8"`
		U64      uint64          `opt:"u64"`
		F        float64         `opt:"f"`
		P        *float64        `opt:"p"`
		Ps       *inner          `opt:"ps"`
		L        []string        `opt:"l"`
		Modes    []string        `opt:"modes,comma" enum:"a,b"`
		Ds       []time.Duration `opt:"ds"`
		Attrs    map[string]any  `opt:"attrs"`
		Untagged int
	}
	ok := func(m map[string]any, check func(all) bool) {
		t.Helper()
		var a all
		if err := Decode(m, &a); err != nil || !check(a) {
			t.Errorf("%v: got %+v (%v)", m, a, err)
		}
	}
	fails := func(m map[string]any, want string) {
		t.Helper()
		var a all
		if err := Decode(m, &a); err == nil || err.Error() != want {
			t.Errorf("%v: err %v, want %s", m, err, want)
		}
	}

	// durations: Go duration strings, or (fractional) milliseconds
	ok(map[string]any{"d": "1m30s"}, func(a all) bool { return a.D == 90*time.Second })
	ok(map[string]any{"d": int64(1500)}, func(a all) bool { return a.D == 1500*time.Millisecond })
	ok(map[string]any{"d": 2.01}, func(a all) bool { return a.D == 2010*time.Microsecond }) // 2009999.9999999998 ns
	ok(map[string]any{"d": 2}, func(a all) bool { return a.D == 2*time.Millisecond })
	ok(map[string]any{"d": "-5s"}, func(a all) bool { return a.D == -5*time.Second })
	ok(map[string]any{"ds": []any{"1s", int64(2)}}, func(a all) bool {
		return reflect.DeepEqual(a.Ds, []time.Duration{time.Second, 2 * time.Millisecond})
	})
	fails(map[string]any{"ds": []any{"1s", "x"}}, `option ds[1]: must be a duration such as "30s" or a number of milliseconds, got string "x"`)

	// integers: whole floats, Go ints, within the field's size
	ok(map[string]any{"i8": -128.0, "i64": int64(math.MaxInt64), "u8": 255, "u64": uint64(math.MaxUint64)}, func(a all) bool {
		return a.I8 == -128 && a.I64 == math.MaxInt64 && a.U8 == 255 && a.U64 == math.MaxUint64
	})
	fails(map[string]any{"i8": int64(128)}, "option i8: must be an integer in [-128, 127], got number 128")
	fails(map[string]any{"u8": 256.0}, "option u8: must be an integer in [0, 255], got number 256")
	fails(map[string]any{"i64": uint64(math.MaxUint64)}, "option i64: must be an integer in [-9223372036854775808, 9223372036854775807], got number 18446744073709551615")
	fails(map[string]any{"u64": -0.5}, "option u64: must be a non-negative integer, got number -0.5")

	// floats from any number
	ok(map[string]any{"f": int64(3)}, func(a all) bool { return a.F == 3 })
	ok(map[string]any{"f": uint8(4)}, func(a all) bool { return a.F == 4 })

	// pointers: nil when absent, set when given (to 0 too)
	ok(map[string]any{}, func(a all) bool { return a.P == nil && a.Ps == nil })
	ok(map[string]any{"p": 0.0, "ps": map[string]any{"n": 2.0}}, func(a all) bool {
		return a.P != nil && *a.P == 0 && a.Ps != nil && a.Ps.N == 2
	})
	fails(map[string]any{"ps": map[string]any{"n": "2"}}, `option ps.n: must be an integer, got string "2"`)
	// a pointer already set is decoded into, keeping its other defaults
	preset := all{Ps: &inner{N: 5}}
	if err := Decode(map[string]any{"ps": map[string]any{"m": 1}}, &preset); err != nil || *preset.Ps != (inner{N: 5, M: 1}) {
		t.Errorf("preset pointer: %+v (%v)", preset.Ps, err)
	}

	// lists: JS arrays, Go slices; a string only with the comma flag
	ok(map[string]any{"l": []string{"a", "b"}}, func(a all) bool { return reflect.DeepEqual(a.L, []string{"a", "b"}) })
	ok(map[string]any{"l": []any{}}, func(a all) bool { return a.L != nil && len(a.L) == 0 })
	fails(map[string]any{"l": "a,b"}, `option l: must be a list of strings, got string "a,b"`)
	ok(map[string]any{"modes": " a, b,,a "}, func(a all) bool { return reflect.DeepEqual(a.Modes, []string{"a", "b", "a"}) })
	ok(map[string]any{"modes": ""}, func(a all) bool { return a.Modes != nil && len(a.Modes) == 0 })
	fails(map[string]any{"modes": "a,c"}, `option modes[1]: must be one of a, b, got string "c"`)
	fails(map[string]any{"modes": []any{"b", "d"}}, `option modes[1]: must be one of a, b, got string "d"`)

	// objects kept as they are
	attrs := map[string]any{"latency": int64(100), "nested": map[string]any{"x": 1.5}}
	ok(map[string]any{"attrs": attrs}, func(a all) bool { return reflect.DeepEqual(a.Attrs, attrs) })
	fails(map[string]any{"attrs": "latency=100"}, `option attrs: must be an object, got string "latency=100"`)

	// an untagged field is no option
	fails(map[string]any{"Untagged": 1}, "option Untagged: unknown (known: attrs, d, ds, f, i64, i8, l, modes, p, ps, u64, u8)")
}

// A rest field takes the keys no field takes, to pass them on.
func TestDecodeRest(t *testing.T) {
	var a struct {
		Name string         `opt:"name"`
		Rest map[string]any `opt:",rest"`
	}
	if err := Decode(map[string]any{"name": "n"}, &a); err != nil || a.Name != "n" || a.Rest != nil {
		t.Errorf("nothing left: %+v (%v)", a, err)
	}
	if err := Decode(map[string]any{"name": "n", "leases": true, "dbLimit": int64(4)}, &a); err != nil ||
		!reflect.DeepEqual(a.Rest, map[string]any{"leases": true, "dbLimit": int64(4)}) {
		t.Errorf("rest: %+v (%v)", a, err)
	}
	if err := Decode(map[string]any{"name": int64(1), "leases": true}, &a); err == nil || err.Error() != "option name: must be a string, got number 1" {
		t.Errorf("named options still checked: %v", err)
	}
}

// An inline struct's options sit beside its parent's, and its required
// ones are required there; embedding it unexported is fine.
func TestDecodeInline(t *testing.T) {
	type marker struct {
		Name string `opt:"name"`
	}
	type base struct {
		Table string `opt:"table,required"`
	}
	var a struct {
		marker `opt:",inline"`
		Base   base   `opt:",inline"`
		Method string `opt:"method"`
	}
	if err := Decode(map[string]any{"name": "n", "table": "t", "method": "drop"}, &a); err != nil ||
		a.Name != "n" || a.Base.Table != "t" || a.Method != "drop" {
		t.Errorf("%+v (%v)", a, err)
	}
	if err := Decode(map[string]any{"name": "n"}, &a); err == nil || err.Error() != "option table: required but not given" {
		t.Errorf("inline required: %v", err)
	}
}

// A recursive type decodes without the check looping.
func TestDecodeRecursive(t *testing.T) {
	type node struct {
		Name string `opt:"name"`
		Kids []node `opt:"kids"`
	}
	var n node
	err := Decode(map[string]any{"name": "a", "kids": []any{map[string]any{"name": "b", "kids": []any{map[string]any{"nam": "c"}}}}}, &n)
	if err == nil || err.Error() != "option kids[0].kids[0].nam: unknown (known: kids, name)" {
		t.Errorf("err %v", err)
	}
}

// A struct the decoder cannot honour is a programming error, reported
// whatever the options hold, so any test decoding it once catches it.
func TestDecodeBadStructs(t *testing.T) {
	type badInner struct {
		C chan int `opt:"c"`
	}
	var n int
	for _, tc := range []struct {
		name string
		dst  any
		want string
	}{
		{"not a pointer", struct{}{}, "opts: Decode needs a non-nil pointer to a struct, got struct {}"},
		{"nil pointer", (*struct{})(nil), "opts: Decode needs a non-nil pointer to a struct, got *struct {}"},
		{"pointer to int", &n, "opts: Decode needs a non-nil pointer to a struct, got *int"},
		{"unknown flag", &struct {
			A int `opt:"a,requird"`
		}{}, `unknown flag "requird"`},
		{"no name", &struct {
			A int `opt:""`
		}{}, "opt tag without a name"},
		{"unexported", &struct {
			a int `opt:"a"`
		}{}, "unexported field"},
		{"enum on a number", &struct {
			A int `opt:"a" enum:"1,2"`
		}{}, "enum on a field that holds no string"},
		{"comma on a string", &struct {
			A string `opt:"a,comma"`
		}{}, "comma on a field that is not a list of strings"},
		{"declared twice", &struct {
			A int `opt:"a"`
			B int `opt:"a"`
		}{}, `option "a" declared twice`},
		{"rest of the wrong type", &struct {
			R map[string]string `opt:",rest"`
		}{}, "rest needs an exported map[string]any field"},
		{"two rests", &struct {
			R map[string]any `opt:",rest"`
			S map[string]any `opt:",rest"`
		}{}, "a second rest field"},
		{"inline with a name", &struct {
			In struct{} `opt:"in,inline"`
		}{}, "inline needs an exported or embedded struct field"},
		{"inline and rest", &struct {
			R map[string]any `opt:",inline,rest"`
		}{}, "inline and rest exclude each other"},
		{"unsupported type", &struct {
			M map[string]int `opt:"m"`
		}{}, `option "m": unsupported type map[string]int`},
		{"unsupported type nested", &struct {
			In []badInner `opt:"in"`
		}{}, `option "c": unsupported type chan int`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Decode(nil, tc.dst)
			if err == nil || !strings.HasPrefix(err.Error(), "opts: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want an opts: error saying %q", err, tc.want)
			}
		})
	}
}

// An Unmarshaler's error is wrapped, so callers can still match it.
func TestDecodeWrapsOwnErrors(t *testing.T) {
	var a struct {
		V custom `opt:"v"`
	}
	err := Decode(map[string]any{"v": 1}, &a)
	if !errors.Is(err, errCustom) || err.Error() != "option v: custom says no" {
		t.Errorf("err %v", err)
	}
}

type custom struct{}

var errCustom = errors.New("custom says no")

func (*custom) UnmarshalOption(any) error { return errCustom }
