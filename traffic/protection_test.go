package traffic

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The protections the incidents need are all plug-ins, each in its own
// file, and each says what it is.
func TestEveryProtectionIsRegistered(t *testing.T) {
	want := []string{"breaker", "coalesce", "compatRead", "dbLimit", "deadlockRetries", "fillLock", "leases", "retryBudget", "staleWhileRevalidate", "tierFlag", "ttlJitter", "xfetch"}
	var got []string
	for _, s := range Registered() {
		got = append(got, s.Name)
		if s.Doc == "" || len(s.Ops) == 0 {
			t.Errorf("%s: no doc or no operation kinds", s.Name)
		}
		p := s.New()
		if p.Enabled() {
			t.Errorf("%s is on by default", s.Name)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: its defaults do not validate: %v", s.Name, err)
		}
		for _, c := range s.Conflicts {
			if !slices.Contains(registry[c].Conflicts, s.Name) {
				t.Errorf("%s conflicts with %s, but not the other way round", s.Name, c)
			}
		}
		for _, c := range s.Counters {
			if MetricKinds()[c.Metric] != Counter {
				t.Errorf("%s: counter %s is not among the engine's metrics", s.Name, c.Metric)
			}
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("registered %v, want %v", got, want)
	}
}

// A protection is turned on by its options and off again; a change to a
// copy does not reach the original.
func TestProtectionsApplyAndClone(t *testing.T) {
	p := NewProtections()
	if err := p.Apply(map[string]any{"leases": true, "leaseTries": int64(9), "dbLimit": int64(2)}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.On(), ",") != "dbLimit,leases" || p.Get("leases").(*leases).Tries != 9 || len(p.fill) != 1 || len(p.db) != 1 {
		t.Fatalf("on %v, leases %+v", p.On(), p.Get("leases"))
	}
	c := p.clone()
	if err := c.Apply(map[string]any{"leases": false}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.On(), ",") != "dbLimit" || strings.Join(p.On(), ",") != "dbLimit,leases" {
		t.Errorf("clone on %v, original on %v", c.On(), p.On())
	}
	st := p.Status()
	if st["leases"] != true || st["leaseTries"] != 9 || st["leaseTTL"] != "3s" || st["dbLimit"] != 2 {
		t.Errorf("status %v", st)
	}
}

// Fill hooks run coalescing first: of a process's callers only the leader
// then takes a fill lock or a lease.
func TestFillHooksCoalesceFirst(t *testing.T) {
	p := NewProtections()
	if err := p.Apply(map[string]any{"leases": true, "coalesce": true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.fill[0].(*coalesce); !ok || len(p.fill) != 2 {
		t.Errorf("fill hooks %T, want coalesce first", p.fill)
	}
}

// A mix changed while the replay runs is refused when a protection that is
// on does not work on its operations, and so is a protection turned on for
// a mix it does not work on; the breaker, built into the client, cannot
// change while the replay runs.
func TestRuntimeChangesAreChecked(t *testing.T) {
	e := engineWith(t, map[string]any{"fillLock": true, "breaker": int64(3)})
	var m Mix
	e.mix.Store(&m)
	err := e.SetMix(Mix{MultiFraction: 0.2})
	if err == nil || !strings.Contains(err.Error(), "protection fillLock does not work on fetch_multi") {
		t.Errorf("setMix with fetch_multi under a fill lock: %v", err)
	}
	if err := e.SetMix(Mix{WriteFraction: 0.1}); err != nil {
		t.Errorf("setMix with writes: %v", err)
	}
	p := e.Protections()
	if err := p.Apply(map[string]any{"fillLock": false, "coalesce": true}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetProtections(p); err != nil {
		t.Errorf("coalesce instead of the fill lock: %v", err)
	}
	p = e.Protections()
	if err := p.Apply(map[string]any{"breakerCooldown": "5s"}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetProtections(p); err == nil || !strings.Contains(err.Error(), "breaker configures the memcached client") {
		t.Errorf("a breaker change while running: %v", err)
	}
	if e.Protections().Get("breaker").(*breaker).Cooldown != time.Second {
		t.Error("the refused change reached the running protections")
	}
}

// deadlockRetries retries a call that was a deadlock's victim, up to its
// count, and nothing else.
func TestDeadlockRetries(t *testing.T) {
	e := &Engine{stats: newStats(1)}
	w := &worker{e: e}
	p := &process{}
	d := &deadlockRetry{Retries: 2}
	deadlock := &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}
	calls := 0
	err := d.db(w, p, func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("update: %w", deadlock)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("two deadlocks then success: err %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	err = d.db(w, p, func() error { calls++; return deadlock })
	if !isDeadlock(err) || calls != 3 {
		t.Errorf("deadlocks every time: err %v after %d calls, want the deadlock after 3", err, calls)
	}
	calls = 0
	other := &mysql.MySQLError{Number: 1146, Message: "no such table"}
	if err := d.db(w, p, func() error { calls++; return other }); err != other || calls != 1 {
		t.Errorf("another error: %v after %d calls, want it at once", err, calls)
	}
}

// A lease loser's waits double up to leaseMaxWait; by default they stay
// at leaseWait.
func TestLeaseWaitsBackOff(t *testing.T) {
	seq := func(l *leases, n int) []time.Duration {
		var out []time.Duration
		for w := l.Wait; len(out) < n; w = l.next(w) {
			out = append(out, w)
		}
		return out
	}
	ms := time.Millisecond
	def := registry["leases"].New().(*leases)
	if got := seq(def, 4); !slices.Equal(got, []time.Duration{20 * ms, 20 * ms, 20 * ms, 20 * ms}) {
		t.Errorf("default waits %v, want 20ms fixed", got)
	}
	l := &leases{Wait: 20 * ms, MaxWait: 160 * ms}
	if got := seq(l, 6); !slices.Equal(got, []time.Duration{20 * ms, 40 * ms, 80 * ms, 160 * ms, 160 * ms, 160 * ms}) {
		t.Errorf("waits %v, want 20ms doubling to 160ms", got)
	}
}
