package database

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/faults"
)

// Plan regression methods.
const (
	// MethodIgnore keeps the index but hides it from the optimizer: MariaDB
	// 10.6+ `ALTER INDEX .. IGNORED`, MySQL 8 `ALTER INDEX .. INVISIBLE`.
	// Instant both ways, so the revert is immediate.
	MethodIgnore = "ignore"
	// MethodDrop drops the index and recreates it on revert from the columns
	// read before the drop; the revert rebuilds it, which takes time on a
	// large table, as in a real incident's fix.
	MethodDrop = "drop"
)

// PlanRegression makes queries that use schema.table's index full-scan the
// table, by method (MethodIgnore when ""). The event's target is
// "schema.table" and its name the index. Revert with RevertPlanRegression
// or Cleanup. The primary key cannot be hidden.
func (in *Injector) PlanRegression(ctx context.Context, schema, table, index, method string) error {
	if method == "" {
		method = MethodIgnore
	}
	tbl, err := qualified(schema, table)
	if err != nil {
		return fmt.Errorf("database plan regression: %w", err)
	}
	idx, err := ident("index", index)
	if err != nil {
		return fmt.Errorf("database plan regression: %w", err)
	}
	if strings.EqualFold(index, "PRIMARY") {
		return fmt.Errorf("database plan regression: the primary key cannot be hidden")
	}
	key := indexKey{schema, table, index}
	in.st.mu.Lock()
	defer in.st.mu.Unlock()
	if _, ok := in.st.hidden[key]; ok {
		return fmt.Errorf("database plan regression: %s.%s already hidden", tbl, idx)
	}
	h := hide{method: method}
	cols, unique, err := in.indexColumns(ctx, schema, table, index)
	if err != nil {
		return fmt.Errorf("database plan regression: %w", err)
	}
	var q string
	switch method {
	case MethodIgnore:
		q = fmt.Sprintf("ALTER TABLE %s ALTER INDEX %s %s", tbl, idx, in.hiddenWord(true))
	case MethodDrop:
		h.columns, h.unique = cols, unique
		q = fmt.Sprintf("ALTER TABLE %s DROP INDEX %s", tbl, idx)
	default:
		return fmt.Errorf("database plan regression: unknown method %q (want ignore or drop)", method)
	}
	if err := in.exec(ctx, q); err != nil {
		return fmt.Errorf("database plan regression %s.%s: %w", tbl, idx, err)
	}
	in.st.hidden[key] = h
	in.event(FaultPlanRegression, faults.Inject, schema+"."+table, index)
	return nil
}

// RevertPlanRegression makes the index usable again (un-ignores it or
// recreates it). It does nothing for an index this injector did not hide.
func (in *Injector) RevertPlanRegression(ctx context.Context, schema, table, index string) error {
	tbl, err := qualified(schema, table)
	if err != nil {
		return fmt.Errorf("database revert plan regression: %w", err)
	}
	idx, err := ident("index", index)
	if err != nil {
		return fmt.Errorf("database revert plan regression: %w", err)
	}
	key := indexKey{schema, table, index}
	in.st.mu.Lock()
	defer in.st.mu.Unlock()
	h, ok := in.st.hidden[key]
	if !ok {
		return nil
	}
	var q string
	if h.method == MethodDrop {
		cols := make([]string, len(h.columns))
		for i, c := range h.columns {
			cols[i] = "`" + c + "`"
		}
		kind := "INDEX"
		if h.unique {
			kind = "UNIQUE INDEX"
		}
		q = fmt.Sprintf("ALTER TABLE %s ADD %s %s (%s)", tbl, kind, idx, strings.Join(cols, ", "))
	} else {
		q = fmt.Sprintf("ALTER TABLE %s ALTER INDEX %s %s", tbl, idx, in.hiddenWord(false))
	}
	if err := in.alterPastScans(ctx, table, q); err != nil {
		return fmt.Errorf("database revert plan regression %s.%s: %w", tbl, idx, err)
	}
	delete(in.st.hidden, key)
	in.event(FaultPlanRegression, faults.Remove, schema+"."+table, index)
	return nil
}

// lockWait is how long the revert lets the statements holding the table
// finish on their own before it kills them. A query on an indexed column
// runs in milliseconds; one still running after this is a scan of the fault.
const lockWait = time.Second

// alterPastScans runs q, an ALTER of table, when scans started while the
// index was lost hold the table. A client's timeout does not stop its
// statement on the server, so a lost index leaves scans running long after
// their callers gave up, and the ALTER's metadata lock waits for every one
// of them. While it waits, new statements on the table queue behind it (a
// pending exclusive metadata lock comes first), so only the statements
// already running hold it up: after lockWait they are killed (KILL QUERY),
// as incident 003's operators killed the scans, again every 250 ms, until
// the ALTER lands or the injector's timeout passes. Killing only while the
// ALTER waits matters: killed between two attempts, the scans would be
// replaced by new ones as fast as they die (the lookups keep coming until
// the caller turns them off).
func (in *Injector) alterPastScans(ctx context.Context, table, q string) error {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	conn, err := in.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var self int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&self); err != nil {
		return fmt.Errorf("connection id: %w", err)
	}
	wait := max(1, int(math.Ceil(in.timeout.Seconds())))
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", wait)); err != nil {
		return fmt.Errorf("set lock_wait_timeout: %w", err)
	}
	defer func() {
		// The connection goes back to the pool: restore its lock wait, or
		// drop it from the pool when that fails.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(rctx, "SET SESSION lock_wait_timeout = @@GLOBAL.lock_wait_timeout"); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, err := conn.ExecContext(ctx, q)
		done <- err
	}()
	start := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	killed := 0
	var killErr error
	result := func(err error) error {
		if err != nil && killErr != nil {
			return fmt.Errorf("%w (killing the queries holding %s: %v)", err, table, killErr)
		}
		if err != nil && killed > 0 {
			return fmt.Errorf("%w (after killing %d queries holding %s)", err, killed, table)
		}
		return err
	}
	for {
		select {
		case err := <-done:
			return result(err)
		case <-tick.C:
		}
		if time.Since(start) < lockWait {
			continue
		}
		n, err := in.killHolders(ctx, table, self, done)
		killed += n
		if err != nil {
			killErr = err
		}
	}
}

// killHolders kills the statements that mention table and are running,
// not waiting for its metadata lock, other than the ALTER on connection
// alter; it stops as soon as the ALTER is done (and leaves done for the
// caller to read).
func (in *Injector) killHolders(ctx context.Context, table string, alter int64, done chan error) (int, error) {
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case err := <-done:
			done <- err // the caller reads it
			cancel()
		case <-kctx.Done():
		}
	}()
	n, err := in.killListed(kctx, `SELECT ID FROM information_schema.PROCESSLIST
		WHERE COMMAND = 'Query' AND ID <> CONNECTION_ID() AND ID <> ? AND INFO LIKE ?
		AND COALESCE(STATE, '') NOT LIKE 'Waiting for%metadata lock'`,
		alter, "%"+strings.ReplaceAll(table, "_", `\_`)+"%")
	if kctx.Err() != nil && ctx.Err() == nil {
		err = nil // the ALTER landed while we were killing: done
	}
	return n, err
}

func (in *Injector) hiddenWord(hidden bool) string {
	switch {
	case in.flavor == MariaDB && hidden:
		return "IGNORED"
	case in.flavor == MariaDB:
		return "NOT IGNORED"
	case hidden:
		return "INVISIBLE"
	default:
		return "VISIBLE"
	}
}

// indexColumns reads an index's columns in order, and whether it is unique.
// Prefix lengths are not kept: the harness's own tables use none.
func (in *Injector) indexColumns(ctx context.Context, schema, table, index string) ([]string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	rows, err := in.db.QueryContext(ctx, `SELECT COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND TABLE_NAME = ? AND INDEX_NAME = ? ORDER BY SEQ_IN_INDEX`, schema, table, index)
	if err != nil {
		return nil, false, fmt.Errorf("read index %s.%s.%s: %w", schema, table, index, err)
	}
	defer rows.Close()
	var cols []string
	unique := false
	for rows.Next() {
		var c string
		var nonUnique int
		if err := rows.Scan(&c, &nonUnique); err != nil {
			return nil, false, fmt.Errorf("read index: %w", err)
		}
		cols = append(cols, c)
		unique = nonUnique == 0
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read index: %w", err)
	}
	if len(cols) == 0 {
		return nil, false, fmt.Errorf("no index %q on %s.%s", index, schema, table)
	}
	return cols, unique, nil
}

func qualified(schema, table string) (string, error) {
	t, err := ident("table", table)
	if err != nil {
		return "", err
	}
	if schema == "" {
		return t, nil
	}
	s, err := ident("schema", schema)
	if err != nil {
		return "", err
	}
	return s + "." + t, nil
}
