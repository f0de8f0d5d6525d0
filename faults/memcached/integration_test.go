//go:build integration

package memcached_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/environments/envtest"
	"github.com/firedrill-dev/firedrill/faults/memcached"
)

// A real environment from environments.Up; without Docker the tests fail.
var env *environments.Env

func TestMain(m *testing.M) {
	envtest.Main(m, func(e *environments.Env) { env = e }, environments.WithMemcached(2))
}

// send dials addr on a connection of its own, sends cmd and returns a
// reader of the replies; the connection closes when the test ends.
func send(t *testing.T, addr, cmd string) *bufio.Reader {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd); err != nil {
		t.Fatal(err)
	}
	return bufio.NewReader(c)
}

// do sends one memcached command and returns its first reply line.
func do(t *testing.T, addr, cmd string) string {
	t.Helper()
	line, err := send(t, addr, cmd).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// Keys a client placed on either server are gone from both at once; the
// others stay.
func TestExpireKeysDeletesOnEveryServer(t *testing.T) {
	direct := []string{env.Memcached[0].DirectAddr, env.Memcached[1].DirectAddr}
	var keys []string
	for i := range 400 {
		k := fmt.Sprintf("item:%d:0", i)
		keys = append(keys, k)
		if r := do(t, direct[i%2], "set "+k+" 0 600 2\r\nhi\r\n"); r != "STORED" {
			t.Fatalf("set %s: %q", k, r)
		}
	}
	if r := do(t, direct[0], "set keep 0 600 2\r\nhi\r\n"); r != "STORED" {
		t.Fatalf("set keep: %q", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := memcached.ExpireKeys(ctx, direct, append(keys, "never-set"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 400 {
		t.Errorf("present = %d, want 400", n)
	}
	for i, k := range keys {
		if r := do(t, direct[i%2], "get "+k+"\r\n"); r != "END" {
			t.Fatalf("%s still there: %q", k, r)
		}
	}
	if r := do(t, direct[0], "get keep\r\n"); !strings.HasPrefix(r, "VALUE keep") {
		t.Errorf("a key not named was deleted: %q", r)
	}
	if _, err := memcached.ExpireKeys(ctx, direct, []string{"a key with spaces"}); err == nil {
		t.Error("a key with spaces was sent")
	}
}

// totalConnections is a server's count of connections it ever accepted.
func totalConnections(t *testing.T, addr string) int {
	t.Helper()
	r := send(t, addr, "stats\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if _, err := fmt.Sscanf(line, "STAT total_connections %d", &n); err == nil {
			return n
		}
		if strings.HasPrefix(line, "END") {
			t.Fatal("no total_connections in stats")
		}
	}
}

// An Expirer keeps one connection per server across calls, and dials
// again after its connection is cut.
func TestExpirerKeepsOneConnectionPerServer(t *testing.T) {
	direct := []string{env.Memcached[0].DirectAddr, env.Memcached[1].DirectAddr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := []int{totalConnections(t, direct[0]), totalConnections(t, direct[1])}
	e := memcached.NewExpirer(direct)
	defer e.Close()
	for i := range 30 {
		k := fmt.Sprintf("inv:%d", i)
		if r := do(t, direct[i%2], "set "+k+" 0 600 2\r\nhi\r\n"); r != "STORED" {
			t.Fatalf("set %s: %q", k, r)
		}
		n, err := e.Expire(ctx, []string{k})
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("expire %s: present = %d, want 1", k, n)
		}
	}
	for i, a := range direct {
		// the sets' 15 and one stats connection each, and the Expirer's one
		got := totalConnections(t, a) - before[i]
		if got != 15+1+1 {
			t.Errorf("%s accepted %d connections over 30 expiries, want 17 (15 sets, 1 stats, 1 expirer)", a, got)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if r := do(t, direct[0], "set again 0 600 2\r\nhi\r\n"); r != "STORED" {
		t.Fatalf("set again: %q", r)
	}
	if n, err := e.Expire(ctx, []string{"again"}); err != nil || n != 1 {
		t.Fatalf("expire after close: present %d, %v; want 1, nil", n, err)
	}
}
