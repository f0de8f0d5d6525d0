package harness

import (
	"strings"
	"testing"

	"github.com/firedrill-dev/firedrill/reports"
)

func TestParseExpr(t *testing.T) {
	good := map[string]expr{
		"write_p99 >= 10 x before":                {metric: "write_p99", op: ">=", k: 10, rel: "before"},
		"fetch_p99 <= 2x before + 20":             {metric: "fetch_p99", op: "<=", k: 2, rel: "before", plus: 20},
		"served_ratio>=0.98":                      {metric: "served_ratio", op: ">=", k: 0.98},
		"errors{class=too_many_connections} == 0": {metric: "errors", sel: map[string]string{"class": "too_many_connections"}, op: "==", k: 0},
		"db_rate <= 1.1 * hot_set_expiry:none":    {metric: "db_rate", op: "<=", k: 1.1, rel: "hot_set_expiry:none"},
		"failed{op=write, class=timeout} < 1e3":   {metric: "failed", sel: map[string]string{"op": "write", "class": "timeout"}, op: "<", k: 1000},
		"db_rate_peak >= 10 x db_rate@before":     {metric: "db_rate_peak", op: ">=", k: 10, rel: "before", relMetric: "db_rate"},
	}
	for s, want := range good {
		got, err := parseExpr(s)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		if got.metric != want.metric || got.op != want.op || got.k != want.k || got.rel != want.rel || got.relMetric != want.relMetric || got.plus != want.plus || len(got.sel) != len(want.sel) {
			t.Errorf("%q = %+v, want %+v", s, got, want)
		}
		for k, v := range want.sel {
			if got.sel[k] != v {
				t.Errorf("%q: tag %s = %q, want %q", s, k, got.sel[k], v)
			}
		}
	}
	for _, s := range []string{"", "p99 < ", "fetch_p99 ~ 3", "fetch_p99 < x before", "fetch_p99 < 2 + 3", "Fetch_p99 < 3", "errors{class} > 0", "fetch_p99 < 2 x before extra", "fetch_p99 < 2 x Db@before", "fetch_p99 < 2 x @before"} {
		if _, err := parseExpr(s); err == nil {
			t.Errorf("%q parsed; want an error", s)
		}
	}
}

func TestSpecValidation(t *testing.T) {
	d := Drill{Name: "d", Profiles: []string{"unprotected", "protected"}, Expect: map[string]string{"unprotected": reports.Broken, "protected": reports.Held}}
	sig := `{"name":"s","kind":"signature","phase":"x","expr":"fetch_p99 > 10 x before","incident":"002_a.txt:12"}`
	st := `{"name":"h","kind":"steady","phase":"x","expr":"fetch_p99 < 2 x before"}`
	bad := map[string]string{
		`{"checks":[]}`: "no checks",
		`{"checks":[{"name":"p","kind":"precondition","phase":"before","expr":"offered > 0"}]}`:             "has no",
		`{"checks":[{"name":"s","kind":"signature","phase":"x","expr":"fetch_p99 > 3"},` + st + `]}`:        "cites its incident",
		`{"checks":[{"name":"s","kind":"sig","phase":"x","expr":"fetch_p99 > 3"}]}`:                         `kind "sig"`,
		`{"checks":[` + sig + `,` + st + `,` + st + `]}`:                                                    "used twice",
		`{"checks":[{"name":"h","kind":"steady","phase":"x","expr":"fetch_p99 < 2","profiles":["other"]}]}`: `profile "other"`,
		`{"checks":[` + sig + `,` + st + `],"windows":[{"name":"w","from":5,"to":1}]}`:                      "must be after",
		`{"checks":[` + sig + `,` + st + `],"windows":[{"name":"before","from":0,"to":1}]}`:                 "not before",
		`{"checks":[` + sig + `,` + st + `],"extra":1}`:                                                     `unknown field "extra"`,
		`{"checks":[` + st + `]}`:  "declared broken has no signature check",
		`{"checks":[` + sig + `]}`: "declared held has no steady check",
		`{"checks":[{"name":"h","kind":"steady","phase":"","expr":"fetch_p99 < 2"}]}`: "no phase",
	}
	for js, want := range bad {
		if _, err := ParseSpec(d, []byte(js)); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "drill d") {
			t.Errorf("%s: error %v, want one naming the drill and %q", js, err, want)
		}
	}
	if _, err := ParseSpec(d, []byte(`{"checks":[`+sig+`,`+st+`]}`)); err != nil {
		t.Errorf("a good spec: %v", err)
	}
}

func check(kind, name string, ok bool) reports.Check {
	return reports.Check{Kind: kind, Name: name, Outcome: outcome(kind, ok)}
}

func TestDecide(t *testing.T) {
	pre := check(reports.Precondition, "traffic ran", true)
	badPre := check(reports.Precondition, "cache warm", false)
	cases := []struct {
		name, expected string
		checks         []reports.Check
		want           string
		reason         string
	}{
		{"every signature observed", reports.Broken, []reports.Check{pre, check(reports.Signature, "a", true), check(reports.Signature, "b", true), check(reports.SteadyState, "s", false)}, reports.Broken, "every signature observed: a; b"},
		{"one of two observed", reports.Broken, []reports.Check{pre, check(reports.Signature, "a", true), check(reports.Signature, "b", false)}, reports.Partial, "1 of 2 signatures observed; not observed: b"},
		{"none observed", reports.Broken, []reports.Check{pre, check(reports.Signature, "a", false)}, reports.Held, "no signature observed: a"},
		{"precondition failed", reports.Broken, []reports.Check{badPre, check(reports.Signature, "a", true)}, reports.Invalid, "precondition failed: cache warm"},
		{"held", reports.Held, []reports.Check{pre, check(reports.Signature, "a", false), check(reports.SteadyState, "s", true)}, reports.Held, ""},
		{"a steady state failed", reports.Held, []reports.Check{pre, check(reports.SteadyState, "s", false), check(reports.SteadyState, "t", true)}, reports.Broken, "steady state failed: s"},
		{"invalid even when held", reports.Held, []reports.Check{badPre, check(reports.SteadyState, "s", true)}, reports.Invalid, "precondition failed: cache warm"},
	}
	for _, c := range cases {
		got, reason, _, _ := decide(c.expected, c.checks)
		if got != c.want || reason != c.reason {
			t.Errorf("%s: %s (%s), want %s (%s)", c.name, got, reason, c.want, c.reason)
		}
	}
}
