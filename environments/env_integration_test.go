//go:build integration

package environments_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
)

// roundTrip sets and gets a key through addr and returns how long the get
// took.
func roundTrip(t *testing.T, addr, key string) time.Duration {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	fmt.Fprintf(conn, "set %s 0 60 5\r\nhello\r\n", key)
	if line, _ := r.ReadString('\n'); line != "STORED\r\n" {
		t.Fatalf("set through %s: %q", addr, line)
	}
	start := time.Now()
	fmt.Fprintf(conn, "get %s\r\n", key)
	var got []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("get through %s: %v", addr, err)
		}
		if line == "END\r\n" {
			break
		}
		got = append(got, strings.TrimSpace(line))
	}
	d := time.Since(start)
	if len(got) != 2 || got[1] != "hello" {
		t.Fatalf("get through %s: %q", addr, got)
	}
	return d
}

func toxiproxy(t *testing.T, method, url, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func labelled(t *testing.T, runID string) string {
	t.Helper()
	filter := "label=" + environments.LabelRun
	if runID != "" {
		filter += "=" + runID
	}
	c, err := exec.Command("docker", "ps", "-aq", "--filter", filter).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	n, err := exec.Command("docker", "network", "ls", "-q", "--filter", filter).Output()
	if err != nil {
		t.Fatalf("docker network ls: %v", err)
	}
	return strings.TrimSpace(string(c) + string(n))
}

func TestEnvironmentEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A drill's @db server options reach the server: connection-storm's
	// queue (the thread pool), beside which the admin path keeps its own
	// threads.
	env, err := environments.Up(ctx, environments.WithMemcached(2), environments.WithDBArgs("--thread-handling=pool-of-threads"))
	t.Cleanup(func() {
		if err := env.Down(context.Background()); err != nil {
			t.Errorf("down: %v", err)
		}
		if left := labelled(t, env.RunID); left != "" {
			t.Errorf("left behind after Down: %s", left)
		}
	})
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if len(env.Memcached) != 2 {
		t.Fatalf("want 2 memcached servers, got %d", len(env.Memcached))
	}

	// Published ports are on loopback only.
	out, err := exec.Command("docker", "ps", "--filter", "label="+environments.LabelRun+"="+env.RunID, "--format", "{{.Ports}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.FieldsFunc(string(out), func(r rune) bool { return r == ',' || r == '\n' }) {
		p = strings.TrimSpace(p)
		if strings.Contains(p, "->") && !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("port published beyond loopback: %s", p)
		}
	}

	// Traffic passes through every proxy, and lands on the server behind it.
	for i, s := range env.Memcached {
		key := fmt.Sprintf("k%d", i)
		roundTrip(t, s.ProxyAddr, key)
		roundTrip(t, s.DirectAddr, key) // the same server holds it
	}
	db, err := sql.Open("mysql", env.DB.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("query through the database proxy: %v", err)
	}
	var handling string
	if err := db.QueryRowContext(ctx, "SELECT @@thread_handling").Scan(&handling); err != nil || handling != "pool-of-threads" {
		t.Errorf("thread_handling %q (%v): want the server option WithDBArgs gave, pool-of-threads", handling, err)
	}
	admin, err := sql.Open("mysql", env.DB.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("query over the admin port beside the thread pool: %v", err)
	}
	if env.DB.Flavor != "mariadb" || !strings.Contains(env.DB.Version, "MariaDB") {
		t.Errorf("flavor %q version %q", env.DB.Flavor, env.DB.Version)
	}

	// A latency toxic on the proxy slows the round trip; removing it
	// restores it.
	target := env.Memcached[0]
	base := roundTrip(t, target.ProxyAddr, "lat")
	if code := toxiproxy(t, http.MethodPost, env.ToxiproxyURL+"/proxies/"+target.Name+"/toxics",
		`{"name":"lat","type":"latency","stream":"downstream","attributes":{"latency":200}}`); code != http.StatusOK {
		t.Fatalf("add toxic: HTTP %d", code)
	}
	slow := roundTrip(t, target.ProxyAddr, "lat")
	if slow < 180*time.Millisecond {
		t.Errorf("with a 200 ms latency toxic the get took %s (without: %s)", slow, base)
	}
	if code := toxiproxy(t, http.MethodDelete, env.ToxiproxyURL+"/proxies/"+target.Name+"/toxics/lat", ""); code != http.StatusNoContent {
		t.Fatalf("remove toxic: HTTP %d", code)
	}
	if fast := roundTrip(t, target.ProxyAddr, "lat"); fast > 100*time.Millisecond {
		t.Errorf("after removing the toxic the get took %s", fast)
	}

	// On Linux with a local engine the run's network is routable from the
	// host, so traffic skips docker-proxy and goes to Toxiproxy's address.
	if local := os.Getenv("DOCKER_HOST"); runtime.GOOS == "linux" && (local == "" || strings.HasPrefix(local, "unix://")) {
		if env.Route != environments.RouteNetwork || strings.HasPrefix(env.DB.ProxyAddr, "127.0.0.1:") || strings.HasPrefix(env.Memcached[0].ProxyAddr, "127.0.0.1:") {
			t.Errorf("route %q, database proxy at %s, memcached-0 proxy at %s: want the run's network, not the published ports", env.Route, env.DB.ProxyAddr, env.Memcached[0].ProxyAddr)
		}
	}

	// Vars hand every endpoint to k6.
	vars := strings.Join(env.Vars(), "\n")
	for _, want := range []string{"FIREDRILL_MEMCACHED=" + env.Memcached[0].ProxyAddr, "FIREDRILL_TOXIPROXY=http://127.0.0.1:", "FIREDRILL_MYSQL_DSN=firedrill:firedrill@tcp(" + env.DB.ProxyAddr + ")", "FIREDRILL_MYSQL_ADMIN_DSN=root:firedrill@tcp(127.0.0.1:"} {
		if !strings.Contains(vars, want) {
			t.Errorf("Vars() lacks %q:\n%s", want, vars)
		}
	}
}

// A run whose process is gone leaves containers and networks; the next Up
// (or Reap) removes them, and leaves a live run's alone.
func TestReapRemovesOnlyDeadRuns(t *testing.T) {
	ctx := context.Background()
	dead := "fd-test-dead-" + fmt.Sprint(time.Now().UnixNano())
	out, err := exec.Command("docker", "network", "create",
		"--label", environments.LabelRun+"="+dead, "--label", environments.LabelPID+"=999999999", dead).CombinedOutput()
	if err != nil {
		t.Fatalf("create network: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", dead).Run() })
	live := environments.Labels("fd-test-live", "network")
	args := []string{"network", "create"}
	for k, v := range live {
		args = append(args, "--label", k+"="+v)
	}
	liveName := "fd-test-live-" + fmt.Sprint(time.Now().UnixNano())
	if out, err := exec.Command("docker", append(args, liveName)...).CombinedOutput(); err != nil {
		t.Fatalf("create network: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", liveName).Run() })

	n, err := environments.Reap(ctx)
	if err != nil {
		t.Fatalf("reap: %v", err)
	}
	if n < 1 || labelled(t, dead) != "" {
		t.Errorf("reap removed %d, dead run still has: %q", n, labelled(t, dead))
	}
	if labelled(t, "fd-test-live") == "" {
		t.Error("reap removed a live run's network")
	}
}
