package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

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

// lockWait is how long the revert's ALTER waits for the table's metadata
// lock before alterPastScans clears the way. A query on an indexed column
// runs in milliseconds; one that has run this long is a scan of the fault.
const lockWait = 3 * time.Second

// alterPastScans runs q, an ALTER of table, when scans started while the
// index was lost hold the table. A client's timeout does not stop its
// statement on the server, so a lost index leaves scans running long after
// their callers gave up, and the ALTER's metadata lock waits for every one
// of them while the queries queued behind it stall the table; on a loaded
// machine that outlasts the injector's timeout and the revert never lands.
// So the ALTER waits lockWait at a time, and after each wait the statements
// that have run on the table longer than that are killed (KILL QUERY), as
// incident 003's operators killed the scans, until it lands or the
// injector's timeout passes.
func (in *Injector) alterPastScans(ctx context.Context, table, q string) error {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	conn, err := in.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", int(lockWait/time.Second))); err != nil {
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
	killed := 0
	for {
		_, err := conn.ExecContext(ctx, q)
		var me *mysql.MySQLError
		if err == nil || !errors.As(err, &me) || me.Number != errLockWaitTimeout {
			if err != nil && killed > 0 {
				err = fmt.Errorf("%w (after killing %d long-running queries on %s)", err, killed, table)
			}
			return err
		}
		n, err := in.killLongQueries(ctx, table, lockWait)
		if err != nil {
			return fmt.Errorf("waiting for the metadata lock of %s: %w", table, err)
		}
		killed += n
	}
}

// errLockWaitTimeout is ER_LOCK_WAIT_TIMEOUT, also raised when a metadata
// lock wait passes lock_wait_timeout.
const errLockWaitTimeout = 1205

// killLongQueries kills the statements that mention table and have run at
// least age, other than those waiting for a metadata lock themselves.
func (in *Injector) killLongQueries(ctx context.Context, table string, age time.Duration) (int, error) {
	return in.killListed(ctx, `SELECT ID FROM information_schema.PROCESSLIST
		WHERE COMMAND = 'Query' AND ID <> CONNECTION_ID() AND TIME >= ? AND INFO LIKE ?
		AND COALESCE(STATE, '') NOT LIKE 'Waiting for%metadata lock'`,
		int(age/time.Second), "%"+strings.ReplaceAll(table, "_", `\_`)+"%")
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
