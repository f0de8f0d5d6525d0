// Package database injects faults into, and turns on protections of, the
// harness's MySQL-compatible database: a connection cap, a plan regression
// (a frequent query's index ignored or dropped), a DDL storm across many
// small per-tenant schemas, statement time limits and a query killer.
//
// It speaks to the server directly over an admin DSN (root rights), never
// through the Toxiproxy proxy that traffic uses, so a network fault cannot
// stop a fault from being removed. Every statement is bounded by a timeout;
// background work (storm, killer) stops when asked and when its context
// ends. The Injector remembers every change it made so Cleanup restores
// exactly those.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver behind sql.Open("mysql")

	"github.com/firedrill-dev/firedrill/faults"
)

// Flavor is the server family; SQL for limits and index visibility differs.
type Flavor string

// Supported flavors.
const (
	MariaDB Flavor = "mariadb"
	MySQL   Flavor = "mysql"
)

// Fault kinds reported on the timeline.
const (
	FaultConnectionCap  = "connection_cap"
	FaultPlanRegression = "plan_regression"
	FaultDDLStorm       = "ddl_storm"
	FaultStatementLimit = "statement_limit"
	FaultQueryKiller    = "query_killer"
)

// DefaultTimeout bounds each statement the injector runs when WithTimeout
// is not given. DDL on small tenant tables and SET GLOBAL finish in
// milliseconds; a statement stuck this long is itself a finding.
const DefaultTimeout = 30 * time.Second

// Option configures an Injector.
type Option func(*Injector)

// WithTimeout bounds each statement (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(i *Injector) { i.timeout = d } }

// WithRecorder sets where timeline events go (default faults.Discard).
func WithRecorder(r faults.Recorder) Option { return func(i *Injector) { i.rec = r } }

// WithTarget names the server in events (default "mysql", the proxy name).
func WithTarget(name string) Option { return func(i *Injector) { i.target = name } }

// Injector applies database faults through one admin connection pool. It is
// safe for concurrent use; WithRecorder copies share its state.
type Injector struct {
	db      *sql.DB
	dsn     string // set by Open: what an external tool connects with
	flavor  Flavor
	timeout time.Duration
	rec     faults.Recorder
	target  string
	st      *state
}

// state is what this run changed, for Cleanup.
type state struct {
	mu         sync.Mutex
	maxConns   *int64            // original max_connections, set while capped
	stmtLimit  *string           // original limit variable's value, while set
	hidden     map[indexKey]hide // indexes ignored or dropped
	storms     map[*Storm]bool
	killers    map[*Killer]bool
	ownsDB     bool
	closedOnce sync.Once
}

type indexKey struct{ schema, table, index string }

type hide struct {
	method  string
	columns []string // for drop: the index's columns in order, to recreate it
	unique  bool
}

// Open connects to dsn (a go-sql-driver DSN with root rights) and detects
// the flavor when flavor is "". The pool is small on purpose: faults need a
// handful of connections, and every one counts against max_connections.
func Open(ctx context.Context, dsn string, flavor Flavor, opts ...Option) (*Injector, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("database open: %w", err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	in, err := New(ctx, db, flavor, opts...)
	if err != nil {
		db.Close()
		return nil, err
	}
	in.st.ownsDB = true
	in.dsn = dsn
	return in, nil
}

// New wraps an open pool. With flavor "" it asks the server.
func New(ctx context.Context, db *sql.DB, flavor Flavor, opts ...Option) (*Injector, error) {
	in := &Injector{
		db: db, flavor: flavor, timeout: DefaultTimeout, rec: faults.Discard, target: "mysql",
		st: &state{hidden: map[indexKey]hide{}, storms: map[*Storm]bool{}, killers: map[*Killer]bool{}},
	}
	for _, o := range opts {
		o(in)
	}
	switch in.flavor {
	case MariaDB, MySQL:
	case "":
		var v string
		if err := in.scan(ctx, "SELECT VERSION()", nil, &v); err != nil {
			return nil, fmt.Errorf("database detect flavor: %w", err)
		}
		in.flavor = MySQL
		if strings.Contains(strings.ToLower(v), "mariadb") {
			in.flavor = MariaDB
		}
	default:
		return nil, fmt.Errorf("database: unknown flavor %q (want mariadb or mysql)", flavor)
	}
	return in, nil
}

// WithRecorder returns an injector reporting to r that shares in's state.
func (in *Injector) WithRecorder(r faults.Recorder) *Injector {
	cp := *in
	cp.rec = r
	return &cp
}

// Flavor reports the server family.
func (in *Injector) Flavor() Flavor { return in.flavor }

// DB is the admin pool, for checks in tests and drills.
func (in *Injector) DB() *sql.DB { return in.db }

func (in *Injector) exec(ctx context.Context, q string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	_, err := in.db.ExecContext(ctx, q, args...)
	return err
}

// scan runs a single-row query, bounded by the timeout, into dest.
func (in *Injector) scan(ctx context.Context, q string, args []any, dest ...any) error {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	return in.db.QueryRowContext(ctx, q, args...).Scan(dest...)
}

func (in *Injector) event(fault string, a faults.Action, target, name string) {
	in.rec.Record(faults.Event{Fault: fault, Action: a, Target: target, Name: name, Marker: protections[fault]})
}

// protections are what this package turns on to protect the database, not
// faults: on the timeline they are markers.
var protections = map[string]bool{FaultStatementLimit: true, FaultQueryKiller: true}

// identRE is what this package accepts as a schema, table, column or index
// name. Identifiers cannot be bound as parameters, so they are checked and
// quoted instead of trusted.
var identRE = regexp.MustCompile(`^[A-Za-z0-9_$]{1,64}$`)

func ident(kind, s string) (string, error) {
	if !identRE.MatchString(s) {
		return "", fmt.Errorf("bad %s name %q", kind, s)
	}
	return "`" + s + "`", nil
}

// ---- connection cap -------------------------------------------------------

// CapConnections sets max_connections to n and returns the limit in effect:
// the server clamps it (MariaDB's minimum is 10, MySQL's 1). New connections
// past it are refused with error 1040 ("Too many connections"); connections
// already open stay open. Both servers keep one extra slot for a SUPER user,
// which is how RestoreConnections still gets in. The original value is
// restored by RestoreConnections or Cleanup.
func (in *Injector) CapConnections(ctx context.Context, n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("database cap connections: limit %d must be at least 1", n)
	}
	in.st.mu.Lock()
	defer in.st.mu.Unlock()
	if in.st.maxConns == nil {
		var orig int64
		if err := in.scan(ctx, "SELECT @@GLOBAL.max_connections", nil, &orig); err != nil {
			return 0, fmt.Errorf("database cap connections: read max_connections: %w", err)
		}
		in.st.maxConns = &orig
	}
	if err := in.exec(ctx, fmt.Sprintf("SET GLOBAL max_connections = %d", n)); err != nil {
		return 0, fmt.Errorf("database cap connections: %w", err)
	}
	in.event(FaultConnectionCap, faults.Inject, in.target, "")
	var now int
	if err := in.scan(ctx, "SELECT @@GLOBAL.max_connections", nil, &now); err != nil {
		return 0, fmt.Errorf("database cap connections: read back: %w", err)
	}
	return now, nil
}

// RestoreConnections sets max_connections back to its value before the
// first CapConnections. Without a cap in place it does nothing.
func (in *Injector) RestoreConnections(ctx context.Context) error {
	in.st.mu.Lock()
	defer in.st.mu.Unlock()
	if in.st.maxConns == nil {
		return nil
	}
	if err := in.exec(ctx, fmt.Sprintf("SET GLOBAL max_connections = %d", *in.st.maxConns)); err != nil {
		return fmt.Errorf("database restore connections: %w", err)
	}
	in.st.maxConns = nil
	in.event(FaultConnectionCap, faults.Remove, in.target, "")
	return nil
}

// ---- statement time limit -------------------------------------------------

// limitVar is the server's statement time limit variable and the value for d:
// MariaDB's max_statement_time is in seconds and covers every statement;
// MySQL's max_execution_time is in milliseconds and covers SELECT only.
func (in *Injector) limitVar(d time.Duration) (string, string) {
	if in.flavor == MariaDB {
		return "max_statement_time", fmt.Sprintf("%.3f", d.Seconds())
	}
	return "max_execution_time", fmt.Sprintf("%d", d.Milliseconds())
}

// SetStatementLimit sets the global statement time limit to d (0 = none).
// It is a protection, reported as statement_limit. The server copies a
// global into each session at connect, so only connections opened after
// this call get it: clients with warm pools must reconnect (or use the
// query killer, which needs no reconnect).
func (in *Injector) SetStatementLimit(ctx context.Context, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("database statement limit: negative %v", d)
	}
	name, val := in.limitVar(d)
	in.st.mu.Lock()
	defer in.st.mu.Unlock()
	if in.st.stmtLimit == nil {
		var orig string
		if err := in.scan(ctx, "SELECT @@GLOBAL."+name, nil, &orig); err != nil {
			return fmt.Errorf("database statement limit: read %s: %w", name, err)
		}
		in.st.stmtLimit = &orig
	}
	if err := in.exec(ctx, "SET GLOBAL "+name+" = "+val); err != nil {
		return fmt.Errorf("database statement limit: %w", err)
	}
	in.event(FaultStatementLimit, faults.Inject, in.target, name)
	return nil
}

// RestoreStatementLimit puts the limit back as it was before.
func (in *Injector) RestoreStatementLimit(ctx context.Context) error {
	in.st.mu.Lock()
	defer in.st.mu.Unlock()
	if in.st.stmtLimit == nil {
		return nil
	}
	name, _ := in.limitVar(0)
	orig := *in.st.stmtLimit
	// The value was read from the server itself and is numeric.
	if _, err := fmt.Sscanf(orig, "%g", new(float64)); err != nil {
		return fmt.Errorf("database restore statement limit: odd original %q", orig)
	}
	if err := in.exec(ctx, "SET GLOBAL "+name+" = "+orig); err != nil {
		return fmt.Errorf("database restore statement limit: %w", err)
	}
	in.st.stmtLimit = nil
	in.event(FaultStatementLimit, faults.Remove, in.target, name)
	return nil
}

// ---- cleanup --------------------------------------------------------------

// Cleanup stops every storm and killer this injector started, restores
// hidden indexes, the connection cap and the statement limit. It runs even
// when ctx is cancelled (an aborted run must still restore the server),
// each statement bounded by the timeout; calling it twice is safe.
func (in *Injector) Cleanup(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	in.st.mu.Lock()
	storms := keys(in.st.storms)
	killers := keys(in.st.killers)
	idx := make([]indexKey, 0, len(in.st.hidden))
	for k := range in.st.hidden {
		idx = append(idx, k)
	}
	in.st.mu.Unlock()

	var errs []error
	// The caller's recorder reports the removals: the starter's may be gone.
	for _, s := range storms {
		s.ReportTo(in.rec)
		s.Stop()
	}
	for _, k := range killers {
		k.ReportTo(in.rec)
		k.Stop()
	}
	for _, k := range idx {
		errs = append(errs, in.RevertPlanRegression(ctx, k.schema, k.table, k.index))
	}
	errs = append(errs, in.RestoreConnections(ctx), in.RestoreStatementLimit(ctx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("database cleanup: %w", err)
	}
	return nil
}

// Close runs Cleanup and closes the pool if Open made it.
func (in *Injector) Close(ctx context.Context) error {
	err := in.Cleanup(ctx)
	if in.st.ownsDB {
		in.st.closedOnce.Do(func() { in.db.Close() })
	}
	return err
}

func keys[K comparable](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// WaitQuiet waits until the server runs at most maxRunning statements
// (Threads_running, this call's own included) in three polls 100 ms apart,
// and returns how long that took; an error when it is not quiet within
// timeout. A client that gives up on a query closes its connection, but
// the server finishes the statement first: after a stampede the database
// stays saturated by work nobody waits for, and a drill that measures the
// next thing at once measures that backlog.
func (in *Injector) WaitQuiet(ctx context.Context, maxRunning int, timeout time.Duration) (time.Duration, error) {
	if maxRunning < 1 {
		return 0, fmt.Errorf("database wait quiet: threadsRunning %d must be >= 1 (the check's own statement runs)", maxRunning)
	}
	if timeout <= 0 {
		return 0, fmt.Errorf("database wait quiet: timeout %v must be > 0", timeout)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	quiet, running := 0, -1
	for {
		var name string
		if err := in.scan(ctx, "SHOW GLOBAL STATUS LIKE 'Threads_running'", nil, &name, &running); err != nil {
			if ctx.Err() == nil {
				return time.Since(start), fmt.Errorf("database wait quiet: %w", err)
			}
		} else if running <= maxRunning {
			if quiet++; quiet == 3 {
				return time.Since(start), nil
			}
		} else {
			quiet = 0
		}
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return time.Since(start), fmt.Errorf("database wait quiet: %w", err)
			}
			return time.Since(start), fmt.Errorf("database wait quiet: Threads_running still %d (> %d) after %v", running, maxRunning, timeout)
		case <-tick.C:
		}
	}
}
