package traffic

import (
	"testing"
)

// Each seed option lands in its field over the defaults, and errors name
// the option as the decoder words them; range checks stay Validate's.
func TestSeedConfigFromMapOptions(t *testing.T) {
	t.Setenv("FIREDRILL_MYSQL_ADMIN_DSN", "root:x@tcp(127.0.0.1:1)/db")
	t.Setenv("FIREDRILL_SEED", "9")
	c, err := SeedConfigFromMap(map[string]any{
		"dsn": "u@tcp(db:3306)/x", "table": "recs", "rows": 5e6, "payloadMin": int64(10),
		"payloadMax": int64(20), "batch": int64(500), "workers": int64(4), "force": true,
	})
	want := SeedConfig{DSN: "u@tcp(db:3306)/x", Table: "recs", Rows: 5e6, Seed: 9, PayloadMin: 10,
		PayloadMax: 20, Batch: 500, Workers: 4, Force: true}
	if err != nil || c != want {
		t.Errorf("got %+v (%v)\nwant %+v", c, err, want)
	}
	for _, tc := range []struct {
		m    map[string]any
		want string
	}{
		{map[string]any{"row": int64(1)}, "option row: unknown (known: batch, dsn, force, payloadMax, payloadMin, rows, seed, table, workers)"},
		{map[string]any{"rows": int64(-1)}, "option rows: must be a non-negative integer, got number -1"},
		{map[string]any{"workers": 2.5}, "option workers: must be an integer, got number 2.5"},
		{map[string]any{"force": "yes"}, `option force: must be a boolean, got string "yes"`},
		{map[string]any{"table": "x; DROP"}, `option table: "x; DROP" is not a plain table name`},
		{map[string]any{"workers": int64(17)}, "option workers: 17 must be in [1, 16]"},
	} {
		if _, err := SeedConfigFromMap(tc.m); err == nil || err.Error() != tc.want {
			t.Errorf("%v: err %v, want %s", tc.m, err, tc.want)
		}
	}
}
