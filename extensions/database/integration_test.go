//go:build integration

package database

import (
	"os"
	"strings"
	"testing"

	"go.k6.io/k6/v2/metrics"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/environments/envtest"
)

var vars map[string]string

func TestMain(m *testing.M) {
	if dsn := os.Getenv("FIREDRILL_TEST_ADMIN_DSN"); dsn != "" {
		vars = map[string]string{EnvAdminDSN: dsn, EnvProxy: "mysql"}
		os.Exit(m.Run())
	}
	envtest.Main(m, func(e *environments.Env) {
		vars = map[string]string{}
		for _, kv := range e.Vars() {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
	}, environments.WithMemcached(1))
}

func TestFromJavaScript(t *testing.T) {
	rt, samples := newVU(t, vars)
	_, err := rt.VU.Runtime().RunString(`
		const flavor = database.flavor();
		if (flavor !== "mariadb" && flavor !== "mysql") throw new Error("flavor " + flavor);
		const cap = database.capConnections(20);
		if (cap < 10 || cap > 20) throw new Error("cap " + cap);
		database.restoreConnections();

		database.createTenants({ prefix: "firedrill_jst_", count: 3, rows: 300 });
		// the plan regression needs an index: use a tenant table's own
		database.planRegression({ schema: "firedrill_jst_0", table: "items", index: "PRIMARY" });
	`)
	if err == nil || !strings.Contains(err.Error(), "primary key") {
		t.Fatalf("primary key accepted: %v", err)
	}
	_, err = rt.VU.Runtime().RunString(`
		const h = database.startDDLStorm({ prefix: "firedrill_jst_", method: "copy", concurrency: 2, types: ["BIGINT NOT NULL"], chunkRows: 100 });
		let st = database.ddlStormStats(h);
		for (let i = 0; i < 200 && st.running; i++) { st = database.ddlStormStats(h); }
		st = database.stopDDLStorm(h);
		if (st.running || st.failed !== 0) throw new Error("storm " + JSON.stringify(st));

		database.setStatementLimit(2000);
		database.startQueryKiller({ thresholdMs: 500, intervalMs: 50 });
		let threw = false;
		try { database.startQueryKiller({ thresholdMs: 500 }); } catch (e) { threw = true; }
		if (!threw) throw new Error("second killer accepted");
		const ks = database.stopQueryKiller();
		if (ks.running || ks.scans < 0) throw new Error("killer " + JSON.stringify(ks));

		for (const bad of [
			() => database.startDDLStorm({ prefix: "app_" }),
			() => database.startDDLStorm({ prefix: "firedrill_jst_", method: "sideways" }),
			() => database.startDDLStorm({ prefix: "firedrill_jst_", detached: true }),
			() => database.startQueryKiller({ thresholdMs: 100, bogus: 1 }),
			() => database.planRegression({ table: "items" }),
		]) {
			let ok = false;
			try { bad(); } catch (e) { ok = true; }
			if (!ok) throw new Error("accepted: " + bad);
		}
		database.cleanup();
		database.cleanup();
		if (database.dropTenants("firedrill_jst_") !== 3) throw new Error("drop");
	`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sc := range metrics.GetBufferedSamples(samples) {
		for _, s := range sc.GetSamples() {
			m := s.Tags.Map()
			got = append(got, m["fault"]+"/"+m["action"]+"/"+m["target"])
		}
	}
	want := "connection_cap/inject/mysql connection_cap/remove/mysql ddl_storm/inject/firedrill_jst_ ddl_storm/remove/firedrill_jst_ " +
		"statement_limit/inject/mysql query_killer/inject/mysql query_killer/remove/mysql statement_limit/remove/mysql"
	if strings.Join(got, " ") != want {
		t.Fatalf("events\n got %v\nwant %s", got, want)
	}
}
