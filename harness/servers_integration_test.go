//go:build integration

package harness

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/traffic"
)

// upForSampler starts an environment (Docker is required: without it the
// test fails) and removes it when the test ends.
func upForSampler(t *testing.T, ctx context.Context, opts ...environments.Option) *environments.Env {
	t.Helper()
	env, err := environments.Up(ctx, append([]environments.Option{environments.WithProgress(io.Discard)}, opts...)...)
	t.Cleanup(func() {
		if err := env.Down(context.Background()); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("environment up (Docker is required): %v", err)
	}
	return env
}

// readServerFile reads a sampler file with time zero at origin.
func readServerFile(t *testing.T, path string, origin time.Time) *serverData {
	t.Helper()
	c := newCollector(origin)
	if err := c.readServers(path); err != nil {
		t.Fatal(err)
	}
	if c.servers == nil {
		t.Fatal("the sampler wrote nothing")
	}
	c.servers.finish(origin)
	return c.servers
}

var everything = span{math.Inf(-1), math.Inf(1)}

// The servers' own counts agree with the client's: every statement the
// traffic engine sent as the traffic user is one the database counted for
// that user (SHOW USER_STATISTICS, which leaves out the harness's own
// statements), and every key it fetched is one memcached counted in
// cmd_get. The sampler's readings are taken between the traffic's, and
// their differences must add up to what the engine counted.
//
// Hits may legitimately differ, and this test avoids what makes them: an
// entry in the other format (a rolling format flip) is a hit for memcached
// and a miss for the client, which cannot decode it; an entry past its
// logical TTL but not memcached's (staleWhileRevalidate, xfetch) is a
// memcached hit the client may treat as a miss; and protections send gets
// of their own (leases and fill locks poll, compatRead does not), so with
// them cmd_get runs above the client's fetches.
func TestServerCountersAgreeWithTheClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env := upForSampler(t, ctx, environments.WithMemcached(2))
	sc := traffic.NewSeedConfig()
	sc.DSN, sc.Rows, sc.Table = env.DB.AdminDSN, 20000, "it_servers"
	if _, err := traffic.Seed(ctx, sc); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), ServersFile)
	smp, err := StartSampler(ctx, env, path)
	if err != nil {
		t.Fatal(err)
	}
	defer smp.Stop()
	time.Sleep(1500 * time.Millisecond) // readings before traffic: the baseline

	var proxied, direct []string
	for _, s := range env.Memcached {
		proxied, direct = append(proxied, s.ProxyAddr), append(direct, s.DirectAddr)
	}
	ledger := filepath.Join(t.TempDir(), "ledger.ndjson")
	cfg := traffic.NewConfig(traffic.WithCacheAddrs(proxied...), traffic.WithDSN(env.DB.DSN),
		traffic.WithKeys(20000, 20000), traffic.WithRate(400), traffic.WithDuration(6*time.Second))
	cfg.AdminCacheAddrs = direct
	cfg.Table, cfg.HDROut, cfg.Warm = "it_servers", ledger, 0
	cfg.WriteFraction, cfg.MultiFraction, cfg.MultiSize, cfg.LookupFraction = 0.1, 0.2, 4, 0.1
	cfg.DBTimeout, cfg.CacheTimeout = 10*time.Second, 5*time.Second // no client timeout on a busy machine
	e, err := traffic.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := e.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // readings after traffic: every count is in
	if err := smp.Stop(); err != nil {
		t.Fatal(err)
	}
	if len(s.Errors) != 0 {
		t.Fatalf("the traffic had errors (%v): the counts would not be comparable", s.Errors)
	}
	col := newCollector(start)
	if err := col.readLedger(ledger); err != nil {
		t.Fatal(err)
	}
	col.finish()
	writes := col.ledgerSum(everything, traffic.OpWrite, "offered")

	sd := readServerFile(t, path, start)
	total := func(metric string) float64 {
		t.Helper()
		v, ok := sd.sum(metric, nil, everything)
		if !ok {
			t.Fatalf("no readings of %s", metric)
		}
		return v
	}
	// The client counts fills, multi-row fills and writes as db_queries,
	// lookups apart; the server counts the same statements as SELECTs and
	// UPDATEs.
	clientQueries := float64(s.DBQueries + s.Lookups)
	serverQueries := total(mDBUserSelect) + total(mDBUserUpdate)
	t.Logf("client: %d operations, %d db queries + %d lookups (%d writes), %d fetches (%d hits, %d misses)",
		s.Operations, s.DBQueries, s.Lookups, writes, s.Fetches, s.Hits, s.Misses)
	t.Logf("server: traffic user %v selects + %v updates, %v other; global Com_select %v, Questions %v; memcached cmd_get %v, get_hits %v, get_misses %v",
		total(mDBUserSelect), total(mDBUserUpdate), total(mDBUserOther), total(mDBComSelect), total(mDBQuestions),
		total(mMCCmdGet), total(mMCGetHits), total(mMCGetMisses))
	if s.DBQueries < 500 || s.Fetches < 2000 || writes < 100 {
		t.Fatalf("too little traffic to compare: %+v", s)
	}
	// Tolerances: the counts are exact on both sides, so they must agree
	// to the statement and the key; 0.2% leaves room for a statement the
	// client counted and abandoned (none expected without errors).
	agree := func(what string, server, client float64) {
		t.Helper()
		if math.Abs(server-client) > 0.002*client {
			t.Errorf("%s: server %v, client %v: want within 0.2%%", what, server, client)
		}
	}
	agree("the traffic user's SELECTs and UPDATEs vs the client's db queries and lookups", serverQueries, clientQueries)
	agree("the traffic user's UPDATEs vs the client's writes", total(mDBUserUpdate), float64(writes))
	agree("memcached cmd_get vs the client's fetched keys", total(mMCCmdGet), float64(s.Fetches))
	agree("memcached get_hits vs the client's hits (one format, no protections)", total(mMCGetHits), float64(s.Hits))
	// The global counter also counts statements of other users: never
	// fewer than the traffic user's.
	if total(mDBComSelect) < total(mDBUserSelect) {
		t.Errorf("Com_select %v below the traffic user's SELECTs %v", total(mDBComSelect), total(mDBUserSelect))
	}
	if sd.userCounts != DBUserCountsUserStatistics {
		t.Errorf("the traffic user counted by %q, want MariaDB's user statistics", sd.userCounts)
	}
	// Each container's CPU was read too, and the database worked.
	if cpu, ok := sd.sum(mCPU, map[string]string{"container": "mysql"}, everything); !ok || cpu <= 0 {
		t.Errorf("the database container's CPU: %v seconds (%v)", cpu, ok)
	}
}

// With the database at max_connections for the traffic user, the sampler
// still reads it every second (root over the admin port, which has
// connections of its own), and sees the refusals.
func TestSamplerKeepsSamplingAtMaxConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const maxConns = 20
	env := upForSampler(t, ctx, environments.WithMemcached(1), environments.WithDBArgs("--max-connections=20"))
	goroutines := runtime.NumGoroutine()
	path := filepath.Join(t.TempDir(), ServersFile)
	smp, err := StartSampler(ctx, env, path)
	if err != nil {
		t.Fatal(err)
	}
	defer smp.Stop()
	time.Sleep(1500 * time.Millisecond) // a first reading of every source before the cap

	db, err := sql.Open("mysql", env.DB.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var held []*sql.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	tooMany := func(err error) bool {
		var me *mysql.MySQLError
		return errors.As(err, &me) && me.Number == 1040
	}
	for len(held) <= maxConns {
		c, err := db.Conn(ctx)
		if err == nil {
			err = c.PingContext(ctx)
		}
		if tooMany(err) {
			break
		}
		if err != nil {
			t.Fatalf("connection %d: %v", len(held)+1, err)
		}
		held = append(held, c)
	}
	if len(held) != maxConns {
		t.Fatalf("held %d connections before a refusal, want max_connections = %d", len(held), maxConns)
	}
	// Held at the cap for 6 s, knocking once a second.
	from := time.Now()
	refused := 0
	for range 6 {
		time.Sleep(time.Second)
		c, err := db.Conn(ctx)
		if err == nil {
			err = c.PingContext(ctx)
			c.Close()
		}
		if tooMany(err) {
			refused++
		}
	}
	to := time.Now()
	time.Sleep(1500 * time.Millisecond) // a reading after the last refusal
	if err := smp.Stop(); err != nil {
		t.Fatal(err)
	}
	sd := readServerFile(t, path, from)
	w := span{0, to.Sub(from).Seconds()}
	for _, name := range sd.order {
		src := sd.sources[name]
		missing := missingSeconds(src.rel, w.to)
		t.Logf("%s: %d readings in all, %d seconds of %.1f at the cap missing, %d errors %s", name, len(src.rel), missing, w.to, src.errors, src.firstErr)
		if missing > 0 {
			t.Errorf("%s missed %d seconds while the database was at max_connections", name, missing)
		}
	}
	if refused == 0 {
		t.Fatal("no connection was refused while held at the cap")
	}
	// MariaDB lets an ordinary user's connection past max_connections in,
	// then refuses it once it knows the user has no right to the spare
	// one: that counts in Aborted_connects, and
	// Connection_errors_max_connections only once the spare is taken too.
	aborted, _ := sd.sum(mDBAbortedConnects, nil, everything)
	errs, _ := sd.sum(mDBMaxConnErrors, nil, everything)
	conns, _ := peak(sd.gaugeSeconds(mDBUserConnections, nil, 0, int(w.to)-1))
	threads, _ := peak(sd.gaugeSeconds(mDBThreadsConnected, nil, 0, int(w.to)-1))
	t.Logf("at the cap: %d refusals seen by the client (1 more before); the server counted %v aborted connects, %v max_connections errors; traffic user connections %v, threads connected %v",
		refused, aborted, errs, conns, threads)
	if aborted != float64(refused+1) {
		t.Errorf("the server counted %v aborted connects, the client was refused %d times", aborted, refused+1)
	}
	if conns != maxConns {
		t.Errorf("the traffic user's connections peaked at %v, want the %d held", conns, maxConns)
	}
	if threads < maxConns {
		t.Errorf("threads connected peaked at %v, want at least %d", threads, maxConns)
	}
	// Nothing of the sampler is left running: its goroutines (one per
	// source, Docker's stats streams among them) have ended. The test's
	// own connections go first.
	for _, c := range held {
		c.Close()
	}
	held = nil
	db.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines+2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines+2 {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Stop, %d before Start:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
	}
}

// The sampler's own database thread is raised within the database's CPU
// quota, and with the quota taken by far more busy queries than it has
// cores, still reads the database every second. At the default priority
// a reading waited behind a hot-key expiry's fills for up to 4.6 s and a
// short drill came out invalid for the gap (the saturation here alone did
// not starve it: the drill's mix of fills, writes and reconnections did).
func TestSamplerReadsASaturatedDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env := upForSampler(t, ctx, environments.WithMemcached(1), environments.WithDBCPUs(1))
	path := filepath.Join(t.TempDir(), ServersFile)
	smp, err := StartSampler(ctx, env, path)
	if err != nil {
		t.Fatal(err)
	}
	defer smp.Stop()
	time.Sleep(1500 * time.Millisecond)

	// The load of a hot-key expiry's fills: short range scans, each a
	// few milliseconds of the quota, from many connections at once.
	admin, err := sql.Open("mysql", env.DB.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, q := range []string{
		"CREATE TABLE busy (id INT PRIMARY KEY, v INT NOT NULL)",
		"INSERT INTO busy SELECT seq, seq % 7 FROM seq_1_to_20000",
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db, err := sql.Open("mysql", env.DB.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const busy = 128
	db.SetMaxOpenConns(busy)
	from := time.Now()
	until := from.Add(10 * time.Second)
	errc := make(chan error, busy)
	for range busy {
		go func() {
			var err error
			for err == nil && time.Now().Before(until) {
				var sum int64
				err = db.QueryRowContext(ctx, "SELECT SUM(v) FROM busy WHERE id <= 5000").Scan(&sum)
			}
			errc <- err
		}()
	}
	for range busy {
		if err := <-errc; err != nil {
			t.Fatalf("busy query: %v", err)
		}
	}
	to := time.Now()
	time.Sleep(1500 * time.Millisecond)
	// Exactly one of the server's threads runs raised: the sampler's.
	out, err := exec.CommandContext(ctx, "docker", "exec", env.RunID+"-mysql", "sh", "-c", "cat /proc/1/task/*/stat").Output()
	if err != nil {
		t.Fatalf("read the database's threads: %v", err)
	}
	raised := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// fields after the command's closing parenthesis: state is the
		// 3rd of /proc's fields, nice the 19th
		f := strings.Fields(line[strings.LastIndexByte(line, ')')+1:])
		if len(f) > 16 && f[16] == strconv.Itoa(samplerNice) {
			raised++
		}
	}
	if raised != 1 {
		t.Errorf("%d of the database's threads run at nice %d, want the sampler's one", raised, samplerNice)
	}
	if err := smp.Stop(); err != nil {
		t.Fatal(err)
	}
	sd := readServerFile(t, path, from)
	src := sd.sources[sourceDB]
	t.Logf("database source: %s", src.note)
	if !strings.Contains(src.note, "runs at nice -15") {
		t.Errorf("the sampler's database thread was not raised: %s", src.note)
	}
	cpu, _ := sd.sum(mCPU, map[string]string{"container": "mysql"}, span{0, to.Sub(from).Seconds()})
	cores := cpu / to.Sub(from).Seconds()
	missing := missingSeconds(src.rel, to.Sub(from).Seconds())
	t.Logf("%d busy connections for %.1f s: the database used %.2f cores of its 1; the sampler read it %d times, %d seconds missing, %d errors %s",
		busy, to.Sub(from).Seconds(), cores, len(src.rel), missing, src.errors, src.firstErr)
	if cores < 0.8 {
		t.Fatalf("the database used %.2f cores: not saturated, the test proves nothing", cores)
	}
	if missing > 0 {
		t.Errorf("the sampler missed %d seconds of a saturated database", missing)
	}
}
