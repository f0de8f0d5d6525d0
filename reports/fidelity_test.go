package reports

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func fp(v float64) *Float { f := Float(v); return &f }

func TestMeasuredSaysTheMultipleOfTheReference(t *testing.T) {
	cases := []struct {
		c    Check
		want string
	}{
		{Check{Expr: "db_rate_peak >= 10 x db_rate@before", Phase: "hot_set_expiry:none", Observed: fp(261), Reference: fp(11.05), Relative: "db_rate@before"},
			"db_rate_peak 261 in hot_set_expiry:none = 23.6 x db_rate@before 11.1"},
		{Check{Expr: "write_p99 >= 10 x before", Phase: "ddl_storm", Observed: fp(812.5), Reference: fp(7.25), Relative: "before"},
			"write_p99 812 in ddl_storm = 112 x write_p99@before 7.25"},
		{Check{Expr: "db_rate_peak <= 0.1 x hot_set_expiry:none", Phase: "hot_set_expiry:leases", Observed: fp(27), Reference: fp(489), Relative: "hot_set_expiry:none"},
			"db_rate_peak 27 in hot_set_expiry:leases = 1/18.1 of db_rate_peak@hot_set_expiry:none 489"},
		{Check{Expr: "recovered == 0", Phase: "after", Observed: fp(0)}, "recovered 0 in after"},
		{Check{Expr: "errors{class=too_many_connections} >= 1", Phase: "hot_set_expiry", Observed: fp(231)}, "errors{class=too_many_connections} 231 in hot_set_expiry"},
		{Check{Expr: "recovered >= 1", Phase: "after", Observed: fp(1)}, "recovered 1 in after"},
		{Check{Expr: "failed_ratio>=0.05", Phase: "settled", Observed: fp(0.3127)}, "failed_ratio 0.313 in settled"},
		{Check{Expr: "fetch_p99 >= 10 x calm", Phase: "settled", Observed: fp(40), Reference: fp(0), Relative: "calm"},
			"fetch_p99 40 in settled, fetch_p99@calm 0"},
		{Check{Expr: "fetch_p99 >= 10 x calm", Phase: "settled", Observed: fp(math.NaN())}, "fetch_p99: no data in settled"},
		{Check{Expr: "fetch_p99 >= 10 x calm", Phase: "settled"}, "fetch_p99: no data in settled"},
	}
	for _, tc := range cases {
		if got := Measured(tc.c); got != tc.want {
			t.Errorf("Measured(%q) = %q, want %q", tc.c.Expr, got, tc.want)
		}
	}
}

func TestFidelityListsFiguredChecksUnprotectedFirst(t *testing.T) {
	p := fixture("hot-key-expiry", "protected", 10, 1, 1)
	p.Verdict.Expected, p.Verdict.Reached = Held, Held
	p.Checks = []Check{
		// a signature in a profile that must hold: its verdict does not rest on it
		{Name: "burst there", Kind: Signature, Expr: "db_rate_peak >= 10 x db_rate@before", Phase: "hot_set_expiry:leases",
			Observed: fp(27), Reference: fp(5), Relative: "db_rate@before", Outcome: NotObserved, Figure: "extremely high"},
		{Name: "cut", Kind: SteadyState, Expr: "db_rate_peak <= 0.1 x hot_set_expiry:none", Phase: "hot_set_expiry:leases",
			Observed: fp(27), Reference: fp(489), Relative: "hot_set_expiry:none", Outcome: Pass, Figure: "17,000/s to 1,300/s"},
		{Name: "served", Kind: SteadyState, Expr: "served_ratio >= 0.99", Phase: "hot_set_expiry:leases", Observed: fp(1), Outcome: Pass},
	}
	u := fixture("hot-key-expiry", "unprotected", 10, 1, 1)
	u.Verdict.Expected, u.Verdict.Reached = Broken, Broken
	u.Checks = []Check{{Name: "cut there", Kind: SteadyState, Expr: "db_rate_burst <= 0.1 x hot_set_expiry:none", Phase: "hot_set_expiry:none",
		Observed: fp(500), Outcome: Fail, Figure: "1/13"}, {Name: "burst", Kind: Signature, Expr: "db_rate_peak >= 10 x db_rate@before", Phase: "hot_set_expiry:none",
		Observed: fp(261), Reference: fp(11), Relative: "db_rate@before", Outcome: Observed, Incident: "000_x.txt:5", Figure: "an extremely high | short load"}}
	a := fixture("cache-format-flip", "unprotected", 10, 1, 1)
	a.Checks = []Check{{Name: "no figure", Kind: Signature, Expr: "x >= 1", Observed: fp(1)}}

	rows := Fidelity([]*Result{p, a, u})
	if len(rows) != 2 || rows[0].Profile != "unprotected" || rows[1].Check != "cut" {
		t.Fatalf("rows %+v: want the two figured checks each verdict rests on, unprotected first", rows)
	}
	var buf bytes.Buffer
	if err := WriteFidelity(&buf, rows); err != nil {
		t.Fatal(err)
	}
	golden(t, "fidelity.md.golden", buf.Bytes())
	if !strings.Contains(buf.String(), `extremely high \| short load (000_x.txt:5)`) {
		t.Errorf("a | in a figure must be escaped and the cite follow it:\n%s", buf.String())
	}
}

func TestReplaceFidelityRewritesOnlyTheMarkedBlock(t *testing.T) {
	doc := "# Title\n\n" + FidelityBegin + "\nold table\n" + FidelityEnd + "\n\nafter\n"
	got, err := ReplaceFidelity(doc, "| new |\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\n" + FidelityBegin + "\n| new |\n" + FidelityEnd + "\n\nafter\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"no markers", FidelityEnd + FidelityBegin, doc + FidelityBegin} {
		if _, err := ReplaceFidelity(bad, "x"); err == nil || !strings.Contains(err.Error(), "fidelity") {
			t.Errorf("ReplaceFidelity(%q) = %v, want an error naming the markers", bad, err)
		}
	}
}
