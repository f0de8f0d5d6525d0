//go:build integration

package database_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/environments/envtest"
	"github.com/firedrill-dev/firedrill/faults"
	"github.com/firedrill-dev/firedrill/faults/database"
)

// The database every test here uses: a real server started by
// environments.Up (fails, not skips, without Docker). FIREDRILL_TEST_ADMIN_DSN
// points the tests at an already running server instead, for quick local
// iterations.
var (
	adminDSN string
	flavor   database.Flavor
	// mainAddr is the server's ordinary port, the one applications use
	// and max_connections limits (adminDSN goes to the admin port).
	mainAddr string
)

func TestMain(m *testing.M) {
	if dsn := os.Getenv("FIREDRILL_TEST_ADMIN_DSN"); dsn != "" {
		adminDSN, mainAddr = dsn, os.Getenv("FIREDRILL_TEST_MAIN_ADDR")
		os.Exit(m.Run())
	}
	envtest.Main(m, func(e *environments.Env) {
		adminDSN, flavor, mainAddr = e.DB.AdminDSN, database.Flavor(e.DB.Flavor), e.DB.DirectAddr
	}, environments.WithMemcached(1))
}

type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) Record(ev faults.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev.Fault+"/"+string(ev.Action)+"/"+ev.Target+"/"+ev.Name)
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

func open(t *testing.T) (*database.Injector, *events) {
	t.Helper()
	ctx := context.Background()
	rec := &events{}
	in, err := database.Open(ctx, adminDSN, flavor, database.WithRecorder(rec))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := in.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return in, rec
}

func mustExec(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// userDSN is adminDSN with another user and password.
func userDSN(t *testing.T, user, pass string) string {
	cfg, err := mysql.ParseDSN(adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = user, pass
	cfg.Timeout = 2 * time.Second
	if mainAddr != "" {
		cfg.Addr = mainAddr
	}
	return cfg.FormatDSN()
}

// At max_connections, with every ordinary slot taken by an application
// user, the injector still reverts its faults: it connects over the admin
// port, which has connections of its own, so a drill cannot lock the
// harness out. Its pool keeps no idle connection here, so each revert
// needs a connection made while the database is full.
func TestInjectorRevertsAtMaxConnections(t *testing.T) {
	ctx := context.Background()
	in, rec := open(t)
	db := in.DB()
	mustExec(t, db,
		"CREATE DATABASE IF NOT EXISTS fd_full",
		"DROP TABLE IF EXISTS fd_full.orders",
		"CREATE TABLE fd_full.orders (id INT PRIMARY KEY, customer_id INT NOT NULL, KEY idx_customer (customer_id))",
		"INSERT INTO fd_full.orders VALUES (1, 1), (2, 2)",
		"DROP USER IF EXISTS 'fd_full'@'%'",
		"CREATE USER 'fd_full'@'%' IDENTIFIED BY 'fd'",
		"GRANT SELECT ON *.* TO 'fd_full'@'%'")
	defer mustExec(t, db, "DROP DATABASE IF EXISTS fd_full", "DROP USER IF EXISTS 'fd_full'@'%'")
	var orig, connected int64
	if err := db.QueryRow("SELECT @@GLOBAL.max_connections").Scan(&orig); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Threads_connected'").Scan(&name, &connected); err != nil {
		t.Fatal(err)
	}
	if err := in.PlanRegression(ctx, "fd_full", "orders", "idx_customer", ""); err != nil {
		t.Fatal(err)
	}
	limit, err := in.CapConnections(ctx, int(connected)+3)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxIdleConns(0)

	app, err := sql.Open("mysql", userDSN(t, "fd_full", "fd"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var refused error
	for i := 0; i < limit+10 && refused == nil; i++ {
		c, err := app.Conn(ctx)
		if err == nil {
			if err = c.PingContext(ctx); err == nil {
				conns = append(conns, c)
				continue
			}
			c.Close()
		}
		refused = err
	}
	var me *mysql.MySQLError
	if !errors.As(refused, &me) || me.Number != 1040 {
		t.Fatalf("after %d application connections (cap %d): %v, want error 1040", len(conns), limit, refused)
	}
	// The one connection past the cap that the server keeps for SUPER
	// users is taken too (a drill whose traffic ran as root took it).
	super, err := sql.Open("mysql", userDSN(t, environments.DBAdminUser, environments.DBPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	refused = nil
	for i := 0; i < 5 && refused == nil; i++ {
		c, err := super.Conn(ctx)
		if err == nil {
			if err = c.PingContext(ctx); err == nil {
				conns = append(conns, c)
				continue
			}
			c.Close()
		}
		refused = err
	}
	if !errors.As(refused, &me) || me.Number != 1040 {
		t.Fatalf("root on the ordinary port: %v, want error 1040 once the spare slot is taken", refused)
	}
	t.Logf("database full: %d connections (the spare SUPER slot included), then %v", len(conns), refused)

	if err := in.RevertPlanRegression(ctx, "fd_full", "orders", "idx_customer"); err != nil {
		t.Fatalf("revert the plan regression at max_connections: %v", err)
	}
	if err := in.RestoreConnections(ctx); err != nil {
		t.Fatalf("restore max_connections at max_connections: %v", err)
	}
	var now int64
	if err := db.QueryRow("SELECT @@GLOBAL.max_connections").Scan(&now); err != nil || now != orig {
		t.Fatalf("max_connections %d (%v), want %d back", now, err, orig)
	}
	if _, key := explainKey(t, db, "SELECT * FROM fd_full.orders WHERE customer_id = 2"); key != "idx_customer" {
		t.Fatalf("after the revert the lookup uses key %q, want idx_customer", key)
	}
	want := "plan_regression/inject/fd_full.orders/idx_customer connection_cap/inject/mysql/ plan_regression/remove/fd_full.orders/idx_customer connection_cap/remove/mysql/"
	if got := strings.Join(rec.list(), " "); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
}

func TestConnectionCapRefusesWith1040(t *testing.T) {
	in, rec := open(t)
	ctx := context.Background()
	db := in.DB()
	// A user without SUPER: the server keeps its spare slot for SUPER users
	// only, so this is what an application sees.
	mustExec(t, db,
		"DROP USER IF EXISTS 'fd_app'@'%'",
		"CREATE USER 'fd_app'@'%' IDENTIFIED BY 'fd'",
		"GRANT SELECT ON *.* TO 'fd_app'@'%'")
	var orig, connected int64
	if err := db.QueryRow("SELECT @@GLOBAL.max_connections").Scan(&orig); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Threads_connected'").Scan(&name, &connected); err != nil {
		t.Fatal(err)
	}
	limit, err := in.CapConnections(ctx, int(connected)+3)
	if err != nil {
		t.Fatal(err)
	}
	app, err := sql.Open("mysql", userDSN(t, "fd_app", "fd"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var conns []*sql.Conn
	var refused error
	for i := 0; i < limit+5 && refused == nil; i++ {
		c, err := app.Conn(ctx)
		if err == nil {
			err = c.PingContext(ctx)
			conns = append(conns, c)
		}
		refused = err
	}
	var me *mysql.MySQLError
	if !errors.As(refused, &me) || me.Number != 1040 {
		t.Fatalf("after %d connections with cap %d: err %v, want 1040", len(conns), limit, refused)
	}
	t.Logf("cap %d: refused after %d new connections: %v", limit, len(conns), refused)
	for _, c := range conns {
		c.Close()
	}
	if err := in.RestoreConnections(ctx); err != nil {
		t.Fatal(err)
	}
	var now int64
	if err := db.QueryRow("SELECT @@GLOBAL.max_connections").Scan(&now); err != nil || now != orig {
		t.Fatalf("restored max_connections %d (%v), want %d", now, err, orig)
	}
	c, err := app.Conn(ctx)
	if err != nil {
		t.Fatalf("after restore: %v", err)
	}
	c.Close()
	want := []string{"connection_cap/inject/mysql/", "connection_cap/remove/mysql/"}
	if got := rec.list(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func explainKey(t *testing.T, db *sql.DB, q string) (typ, key string) {
	t.Helper()
	rows, err := db.Query("EXPLAIN " + q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		t.Fatal("no EXPLAIN row")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	for i, c := range cols {
		switch c {
		case "type":
			typ = vals[i].String
		case "key":
			key = vals[i].String
		}
	}
	return typ, key
}

func TestPlanRegressionMakesTheQueryFullScan(t *testing.T) {
	in, rec := open(t)
	ctx := context.Background()
	db := in.DB()
	mustExec(t, db,
		"CREATE DATABASE IF NOT EXISTS fd_plan",
		"DROP TABLE IF EXISTS fd_plan.orders",
		"CREATE TABLE fd_plan.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, total INT NOT NULL, KEY idx_customer (customer_id))")
	var b strings.Builder
	b.WriteString("INSERT INTO fd_plan.orders (customer_id, total) VALUES ")
	for i := 0; i < 5000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(%d,%d)", i%1000, i)
	}
	mustExec(t, db, b.String(), "ANALYZE TABLE fd_plan.orders")
	const q = "SELECT * FROM fd_plan.orders WHERE customer_id = 42"

	for _, method := range []string{database.MethodIgnore, database.MethodDrop} {
		if typ, key := explainKey(t, db, q); key != "idx_customer" {
			t.Fatalf("%s: before: type %s key %q, want idx_customer", method, typ, key)
		}
		if err := in.PlanRegression(ctx, "fd_plan", "orders", "idx_customer", method); err != nil {
			t.Fatal(err)
		}
		typ, key := explainKey(t, db, q)
		if typ != "ALL" || key != "" {
			t.Fatalf("%s: during: type %s key %q, want a full scan (ALL, no key)", method, typ, key)
		}
		if err := in.RevertPlanRegression(ctx, "fd_plan", "orders", "idx_customer"); err != nil {
			t.Fatal(err)
		}
		if typ, key := explainKey(t, db, q); key != "idx_customer" {
			t.Fatalf("%s: after revert: type %s key %q", method, typ, key)
		}
	}
	// Cleanup reverts what is still hidden.
	if err := in.PlanRegression(ctx, "fd_plan", "orders", "idx_customer", ""); err != nil {
		t.Fatal(err)
	}
	if err := in.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, key := explainKey(t, db, q); key != "idx_customer" {
		t.Fatalf("after cleanup: key %q", key)
	}
	if err := in.PlanRegression(ctx, "fd_plan", "orders", "no_such_index", ""); err == nil || !strings.Contains(err.Error(), "no_such_index") {
		t.Fatalf("missing index: %v", err)
	}
	if got := rec.list(); len(got) != 6 || got[0] != "plan_regression/inject/fd_plan.orders/idx_customer" {
		t.Fatalf("events %v", got)
	}
	mustExec(t, db, "DROP DATABASE fd_plan")
}

// A scan that started while the index was lost holds the table's metadata
// lock long after its caller gave up; the revert kills it instead of
// waiting past the injector's timeout.
// Scans that keep coming (the unprotected drill: a lookup every 25 ms,
// each a scan that runs for seconds, until the caller turns them off) do
// not hold the revert off: new ones queue behind its waiting ALTER, and
// the running ones are killed. (Killing only the scans older than the lock
// wait, between attempts, never caught up: each attempt's queue became
// the next attempt's holders.)
func TestRevertLandsWhileScansKeepComing(t *testing.T) {
	ctx := context.Background()
	in, err := database.Open(ctx, adminDSN, flavor, database.WithTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	db := in.DB()
	mustExec(t, db,
		"CREATE DATABASE IF NOT EXISTS fd_plan_stream",
		"DROP TABLE IF EXISTS fd_plan_stream.orders",
		"CREATE TABLE fd_plan_stream.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, KEY idx_customer (customer_id))",
		"INSERT INTO fd_plan_stream.orders (customer_id) VALUES (1), (2), (3)")
	t.Cleanup(func() { _, _ = db.Exec("DROP DATABASE fd_plan_stream") })
	if err := in.PlanRegression(ctx, "fd_plan_stream", "orders", "idx_customer", ""); err != nil {
		t.Fatal(err)
	}
	client, err := sql.Open("mysql", userDSN(t, environments.DBAdminUser, environments.DBPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetMaxOpenConns(120)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				var v int
				_ = client.QueryRowContext(qctx, "SELECT SLEEP(6) FROM fd_plan_stream.orders LIMIT 1").Scan(&v)
			}()
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	time.Sleep(3 * time.Second) // scans of every age are running
	t0 := time.Now()
	// The injector's 15 s timeout bounds it: killing only the scans older
	// than the lock wait between attempts timed out here.
	if err := in.RevertPlanRegression(ctx, "fd_plan_stream", "orders", "idx_customer"); err != nil {
		t.Fatalf("revert while scans keep coming: %v", err)
	}
	t.Logf("revert took %v", time.Since(t0))
}

func TestRevertPlanRegressionKillsScansHoldingTheTable(t *testing.T) {
	ctx := context.Background()
	in, err := database.Open(ctx, adminDSN, flavor, database.WithTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	db := in.DB()
	mustExec(t, db,
		"CREATE DATABASE IF NOT EXISTS fd_plan_kill",
		"DROP TABLE IF EXISTS fd_plan_kill.orders",
		"CREATE TABLE fd_plan_kill.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, KEY idx_customer (customer_id))",
		"INSERT INTO fd_plan_kill.orders (customer_id) VALUES (1), (2), (3)")
	t.Cleanup(func() { _, _ = db.Exec("DROP DATABASE fd_plan_kill") })
	if err := in.PlanRegression(ctx, "fd_plan_kill", "orders", "idx_customer", ""); err != nil {
		t.Fatal(err)
	}
	// the stand-in for a scan: it holds the table for 40 s, longer than
	// the injector's 15 s timeout
	client, err := sql.Open("mysql", adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	scanDone := make(chan time.Duration, 1)
	scanStart := time.Now()
	go func() {
		var v int
		_ = client.QueryRow("SELECT SLEEP(40) FROM fd_plan_kill.orders LIMIT 1").Scan(&v)
		scanDone <- time.Since(scanStart)
	}()
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	if err := in.RevertPlanRegression(ctx, "fd_plan_kill", "orders", "idx_customer"); err != nil {
		t.Fatalf("revert with a scan holding the table: %v", err)
	}
	took := time.Since(t0)
	if _, key := explainKey(t, db, "SELECT * FROM fd_plan_kill.orders WHERE customer_id = 2"); key != "idx_customer" {
		t.Fatalf("after revert: key %q, want idx_customer", key)
	}
	select {
	case d := <-scanDone:
		if d > 30*time.Second {
			t.Errorf("the scan ran %v: it was not killed", d)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("the scan still runs %v after the revert: it was not killed", time.Since(scanStart))
	}
	t.Logf("revert took %v", took)
	// the pool's connections keep the server's lock wait
	var sessionWait, globalWait float64
	for i := 0; i < 8; i++ {
		if err := db.QueryRow("SELECT @@SESSION.lock_wait_timeout, @@GLOBAL.lock_wait_timeout").Scan(&sessionWait, &globalWait); err != nil {
			t.Fatal(err)
		}
		if sessionWait != globalWait {
			t.Fatalf("a pooled connection kept lock_wait_timeout %v (global %v)", sessionWait, globalWait)
		}
	}
}

func columnTypes(t *testing.T, db *sql.DB, prefix string) map[string]int {
	t.Helper()
	rows, err := db.Query(`SELECT COLUMN_TYPE FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA LIKE ? AND TABLE_NAME = 'items' AND COLUMN_NAME = 'qty'`, strings.ReplaceAll(prefix, "_", `\_`)+"%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out[strings.ToLower(strings.Fields(s)[0])]++
	}
	return out
}

func TestDDLStormChangesColumnTypes(t *testing.T) {
	in, rec := open(t)
	ctx := context.Background()
	db := in.DB()
	const tenants, rows = 6, 1200
	for _, method := range []string{database.StormDirect, database.StormCopy} {
		prefix := "firedrill_t" + method + "_"
		if err := in.CreateTenants(ctx, prefix, tenants, rows); err != nil {
			t.Fatal(err)
		}
		if got := columnTypes(t, db, prefix); got["int(11)"] != tenants && got["int"] != tenants {
			t.Fatalf("%s: before: %v", method, got)
		}
		s, err := in.StartDDLStorm(ctx, database.StormConfig{Prefix: prefix, Method: method, Concurrency: 3, ChunkRows: 250,
			Types: []string{"BIGINT NOT NULL"}, ThrottleThreadsRunning: 50})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		st, err := s.Wait(wctx)
		cancel()
		if err != nil || st.Failed != 0 || st.Migrations != tenants {
			t.Fatalf("%s: stats %+v err %v", method, st, err)
		}
		if got := columnTypes(t, db, prefix); got["bigint(20)"] != tenants && got["bigint"] != tenants {
			t.Fatalf("%s: after: %v", method, got)
		}
		if method == database.StormCopy && st.RowsCopied != tenants*rows {
			t.Fatalf("copy: rows copied %d, want %d", st.RowsCopied, tenants*rows)
		}
		for i := 0; i < tenants; i++ {
			var n int
			var leftovers int
			s := database.TenantSchema(prefix, i)
			if err := db.QueryRow("SELECT COUNT(*) FROM `" + s + "`.items").Scan(&n); err != nil || n != rows {
				t.Fatalf("%s: %s has %d rows (%v), want %d", method, s, n, err, rows)
			}
			if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", s).Scan(&leftovers); err != nil || leftovers != 1 {
				t.Fatalf("%s: %s has %d tables, want 1 (no shadow left)", method, s, leftovers)
			}
		}
		t.Logf("%s: %+v", method, st)
		if n, err := in.DropTenants(ctx, prefix); err != nil || n != tenants {
			t.Fatalf("drop tenants: %d %v", n, err)
		}
	}
	want := "ddl_storm/inject/firedrill_tdirect_/direct ddl_storm/remove/firedrill_tdirect_/direct ddl_storm/inject/firedrill_tcopy_/copy ddl_storm/remove/firedrill_tcopy_/copy"
	if got := strings.Join(rec.list(), " "); got != want {
		t.Fatalf("events %v", got)
	}
	if _, err := in.DropTenants(ctx, "app_"); err == nil {
		t.Fatal("a prefix without firedrill_ was accepted")
	}
}

// The online method (pt-online-schema-change) changes every tenant's
// column type while writers keep updating the same tables, and keeps each
// of their writes: the tables' rise equals the writes acknowledged (the
// copy-table method loses the updates made during its copy). It leaves no
// trigger and no shadow table.
func TestOnlineStormKeepsConcurrentWrites(t *testing.T) {
	in, _ := open(t)
	ctx := context.Background()
	db := in.DB()
	const tenants, rows = 4, 3000
	prefix := "firedrill_tonline_"
	if err := in.CreateTenants(ctx, prefix, tenants, rows); err != nil {
		t.Fatal(err)
	}
	defer in.DropTenants(context.Background(), prefix)
	stop := make(chan struct{})
	var acked, sent [tenants]atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tn, id := (w+i)%tenants, (i*7919+w)%rows+1
				sent[tn].Add(1)
				_, err := db.Exec("UPDATE `"+database.TenantSchema(prefix, tn)+"`.items SET qty = qty + 1 WHERE id = ?", id)
				if err == nil {
					acked[tn].Add(1)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}(w)
	}
	s, err := in.StartDDLStorm(ctx, database.StormConfig{Prefix: prefix, Method: database.StormOnline, Concurrency: 2,
		Types: []string{"BIGINT NOT NULL"}, ThrottleThreadsRunning: 20})
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	st, err := s.Wait(wctx)
	cancel()
	time.Sleep(200 * time.Millisecond) // writes after the swap land in the new table too
	close(stop)
	wg.Wait()
	if err != nil || st.Failed != 0 || st.Migrations != tenants {
		t.Fatalf("stats %+v err %v", st, err)
	}
	if got := columnTypes(t, db, prefix); got["bigint(20)"] != tenants && got["bigint"] != tenants {
		t.Fatalf("after: %v", got)
	}
	for i := 0; i < tenants; i++ {
		sc := database.TenantSchema(prefix, i)
		var n, sum int64
		if err := db.QueryRow("SELECT COUNT(*), SUM(qty) FROM `"+sc+"`.items").Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		rise := sum - rows*(rows-1)/2
		if n != rows || rise < acked[i].Load() || rise > sent[i].Load() {
			t.Errorf("%s: %d rows, qty rose by %d; %d writes acknowledged, %d sent: want acknowledged <= rise <= sent", sc, n, rise, acked[i].Load(), sent[i].Load())
		}
		var triggers, tables int
		db.QueryRow("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?", sc).Scan(&triggers)
		db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", sc).Scan(&tables)
		if triggers != 0 || tables != 1 {
			t.Errorf("%s: %d triggers and %d tables left, want 0 and 1", sc, triggers, tables)
		}
	}
	t.Logf("online storm: %+v; acknowledged writes %d %d %d %d", st, acked[0].Load(), acked[1].Load(), acked[2].Load(), acked[3].Load())
}

// An online migration interrupted half way leaves neither its triggers nor
// its shadow table behind.
func TestOnlineStormInterruptedLeavesNothing(t *testing.T) {
	in, _ := open(t)
	prefix := "firedrill_tonstop_"
	if err := in.CreateTenants(context.Background(), prefix, 2, 20000); err != nil {
		t.Fatal(err)
	}
	defer in.DropTenants(context.Background(), prefix)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := in.StartDDLStorm(ctx, database.StormConfig{Prefix: prefix, Method: database.StormOnline, Concurrency: 2,
		Passes: 100, ChunkTime: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the tool is copying by now
	cancel()
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	if st, err := s.Wait(wctx); err != nil || st.Running {
		t.Fatalf("storm still running after its context ended: %+v %v", st, err)
	}
	var triggers, tables int
	in.DB().QueryRow("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA LIKE 'firedrill\\_tonstop\\_%'").Scan(&triggers)
	in.DB().QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'firedrill\\_tonstop\\_%' AND TABLE_NAME <> 'items'").Scan(&tables)
	if triggers != 0 || tables != 0 {
		t.Fatalf("%d triggers and %d shadow tables left", triggers, tables)
	}
}

func TestDDLStormStopsOnContextEnd(t *testing.T) {
	in, _ := open(t)
	prefix := "firedrill_tstop_"
	if err := in.CreateTenants(context.Background(), prefix, 4, 2000); err != nil {
		t.Fatal(err)
	}
	defer in.DropTenants(context.Background(), prefix)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := in.StartDDLStorm(ctx, database.StormConfig{Prefix: prefix, Method: database.StormCopy, Passes: 1000, ChunkRows: 50, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	st, err := s.Wait(wctx)
	if err != nil || st.Running {
		t.Fatalf("storm still running after context end: %+v %v", st, err)
	}
	var shadows int
	if err := in.DB().QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'firedrill\\_tstop\\_%' AND TABLE_NAME <> 'items'").Scan(&shadows); err != nil || shadows != 0 {
		t.Fatalf("%d shadow tables left (%v)", shadows, err)
	}
}

func TestQueryKillerKillsLongQueries(t *testing.T) {
	in, rec := open(t)
	ctx := context.Background()
	k, err := in.StartQueryKiller(ctx, database.KillerConfig{Threshold: 300 * time.Millisecond, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	client, err := sql.Open("mysql", adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	start := time.Now()
	var slept int
	err = client.QueryRow("SELECT SLEEP(5)").Scan(&slept)
	elapsed := time.Since(start)
	// KILL QUERY ends SLEEP early: MySQL returns 1, MariaDB may raise 1317.
	if elapsed > 2500*time.Millisecond || (err == nil && slept != 1) {
		t.Fatalf("long query not killed: %v, slept=%d err=%v", elapsed, slept, err)
	}
	// A short query is left alone.
	if err := client.QueryRow("SELECT SLEEP(0.1)").Scan(&slept); err != nil || slept != 0 {
		t.Fatalf("short query disturbed: %d %v", slept, err)
	}
	st := k.Stop()
	if st.Killed < 1 {
		t.Fatalf("stats %+v", st)
	}
	k.Stop() // twice is fine
	t.Logf("killed after %v: err=%v stats %+v", elapsed, err, st)
	if got := strings.Join(rec.list(), " "); got != "query_killer/inject/mysql/ query_killer/remove/mysql/" {
		t.Fatalf("events %v", got)
	}
}

func TestStatementLimit(t *testing.T) {
	in, _ := open(t)
	ctx := context.Background()
	name := "max_statement_time"
	if in.Flavor() == database.MySQL {
		name = "max_execution_time"
	}
	var orig string
	if err := in.DB().QueryRow("SELECT @@GLOBAL." + name).Scan(&orig); err != nil {
		t.Fatal(err)
	}
	if err := in.SetStatementLimit(ctx, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// A fresh connection picks the global up.
	client, err := sql.Open("mysql", adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	start := time.Now()
	var n int64
	// A heavy SELECT the limit must cut short (SLEEP is not a good probe:
	// MySQL's max_execution_time only covers real query execution).
	err = client.QueryRow("SELECT COUNT(*) FROM information_schema.COLUMNS a, information_schema.COLUMNS b, information_schema.COLUMNS c").Scan(&n)
	elapsed := time.Since(start)
	if err == nil || elapsed > 3*time.Second {
		t.Fatalf("statement not limited: %v n=%d err=%v", elapsed, n, err)
	}
	t.Logf("limited after %v: %v", elapsed, err)
	if err := in.RestoreStatementLimit(ctx); err != nil {
		t.Fatal(err)
	}
	var now string
	if err := in.DB().QueryRow("SELECT @@GLOBAL." + name).Scan(&now); err != nil || now != orig {
		t.Fatalf("restored %s = %q, want %q", name, now, orig)
	}
}

func TestDDLStormThrottlesOnLoad(t *testing.T) {
	in, _ := open(t)
	ctx := context.Background()
	prefix := "firedrill_tthrottle_"
	if err := in.CreateTenants(ctx, prefix, 2, 100); err != nil {
		t.Fatal(err)
	}
	defer in.DropTenants(ctx, prefix)
	// Load: three statements running for 2 s push Threads_running over 2.
	load, err := sql.Open("mysql", adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer load.Close()
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = load.Exec("SELECT SLEEP(2)")
		}()
	}
	time.Sleep(300 * time.Millisecond)
	s, err := in.StartDDLStorm(ctx, database.StormConfig{Prefix: prefix, Method: database.StormCopy, ThrottleThreadsRunning: 2, Types: []string{"BIGINT NOT NULL"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	if st := s.Stats(); st.Migrations != 0 || st.RowsCopied != 0 {
		t.Fatalf("storm ran under load: %+v", st)
	}
	wg.Wait()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := s.Wait(wctx)
	if err != nil || st.Migrations != 2 || st.ThrottledMs < 500 {
		t.Fatalf("after load: %+v %v", st, err)
	}
	t.Logf("throttled: %+v", st)
}

func TestKillerSparesTheInjectorsOwnQueries(t *testing.T) {
	in, _ := open(t)
	ctx := context.Background()
	k, err := in.StartQueryKiller(ctx, database.KillerConfig{Threshold: 100 * time.Millisecond, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	var slept int
	if err := in.DB().QueryRow(database.OwnMarker + "SELECT SLEEP(0.5)").Scan(&slept); err != nil || slept != 0 {
		t.Fatalf("own query killed: %d %v", slept, err)
	}
}

// WaitQuiet waits out statements still running, and says so when they
// outlast its timeout.
func TestWaitQuietWaitsForRunningStatements(t *testing.T) {
	in, _ := open(t)
	ctx := context.Background()
	app, err := sql.Open("mysql", adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	busy := func(secs float64) *sync.WaitGroup {
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				app.ExecContext(ctx, fmt.Sprintf("SELECT SLEEP(%g)", secs))
			}()
		}
		time.Sleep(200 * time.Millisecond) // they have started
		return &wg
	}
	wg := busy(2)
	if _, err := in.WaitQuiet(ctx, 2, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "Threads_running still") {
		t.Errorf("WaitQuiet with three statements running for 2 s and a 300 ms timeout: %v, want Threads_running still ...", err)
	}
	wg.Wait()
	wg = busy(1.5)
	d, err := in.WaitQuiet(ctx, 2, 10*time.Second)
	if err != nil || d < time.Second {
		t.Errorf("WaitQuiet = %v, %v; want about 1.3 s, nil", d, err)
	}
	wg.Wait()
	if _, err := in.WaitQuiet(ctx, 0, time.Second); err == nil {
		t.Error("WaitQuiet(0): no error, want one (its own statement runs)")
	}
}
