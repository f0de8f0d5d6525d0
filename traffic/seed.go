package traffic

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/firedrill-dev/firedrill/envvar"
	"github.com/firedrill-dev/firedrill/internal/opts"
)

// SeedConfig describes the records table. The opt tags name its options
// in cache.seed().
type SeedConfig struct {
	// DSN is where to seed (default env FIREDRILL_MYSQL_ADMIN_DSN, else
	// FIREDRILL_MYSQL_DSN): seeding is setup, so it may bypass the proxy.
	DSN string `opt:"dsn"`
	// Table (default "cache_records").
	Table string `opt:"table"`
	// Rows (default 1,000,000).
	Rows uint64 `opt:"rows"`
	// Seed makes payloads reproducible (default env FIREDRILL_SEED or 1).
	Seed uint64 `opt:"seed"`
	// PayloadMin and PayloadMax bound payload sizes in bytes, drawn
	// uniformly (defaults 64 and 512).
	PayloadMin int `opt:"payloadMin"`
	PayloadMax int `opt:"payloadMax"`
	// Batch is rows per INSERT statement (default 2000).
	Batch int `opt:"batch"`
	// Workers is parallel inserting connections (default 2).
	Workers int `opt:"workers"`
	// Force reseeds even when the table matches.
	Force bool `opt:"force"`
}

// SeedResult says what Seed did.
type SeedResult struct {
	Reused  bool
	Rows    uint64
	Elapsed time.Duration
}

// NewSeedConfig returns the defaults, with the DSN and seed from the
// process's environment.
func NewSeedConfig() SeedConfig { return NewSeedConfigFrom(envvar.OS) }

// NewSeedConfigFrom is NewSeedConfig reading the harness's variables
// through env.
func NewSeedConfigFrom(env envvar.Lookup) SeedConfig {
	c := SeedConfig{
		DSN: env.Get(envvar.MySQLAdminDSN), Table: "cache_records", Rows: 1_000_000, Seed: 1,
		PayloadMin: 64, PayloadMax: 512, Batch: 2000, Workers: 2,
	}
	if c.DSN == "" {
		c.DSN = env.Get(envvar.MySQLDSN)
	}
	if s, err := strconv.ParseUint(env.Get(envvar.Seed), 10, 64); err == nil {
		c.Seed = s
	}
	return c
}

// SeedConfigFromMap applies a JS-style option map over the defaults.
func SeedConfigFromMap(m map[string]any) (SeedConfig, error) {
	return SeedConfigFromMapEnv(envvar.OS, m)
}

// SeedConfigFromMapEnv is SeedConfigFromMap with the harness's variables
// read through env.
func SeedConfigFromMapEnv(env envvar.Lookup, m map[string]any) (SeedConfig, error) {
	c := NewSeedConfigFrom(env)
	if err := opts.Decode(m, &c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate reports the first bad value, naming its option.
func (c SeedConfig) Validate() error {
	switch {
	case c.DSN == "":
		return errors.New("option dsn: no database DSN (set FIREDRILL_MYSQL_ADMIN_DSN)")
	case !validIdent(c.Table):
		return fmt.Errorf("option table: %q is not a plain table name", c.Table)
	case c.Rows == 0 || c.Rows > 1_000_000_000:
		return fmt.Errorf("option rows: %d must be in [1, 1e9]", c.Rows)
	case c.PayloadMin < 0 || c.PayloadMax < c.PayloadMin || c.PayloadMax > 4096:
		return fmt.Errorf("option payloadMax: need 0 <= payloadMin <= payloadMax <= 4096, got %d..%d", c.PayloadMin, c.PayloadMax)
	case c.Batch < 1 || c.Batch > 20000:
		return fmt.Errorf("option batch: %d must be in [1, 20000]", c.Batch)
	case c.Workers < 1 || c.Workers > 16:
		return fmt.Errorf("option workers: %d must be in [1, 16]", c.Workers)
	}
	return nil
}

func (c SeedConfig) params() string {
	return fmt.Sprintf("v1 rows=%d seed=%d payload=%d..%d schema=%s", c.Rows, c.Seed, c.PayloadMin, c.PayloadMax, schemaColumns)
}

const metaTable = "firedrill_seed_meta"

// RefIndex is the secondary index on the records table's ref column, which
// lookups use and a plan-regression fault takes away.
const RefIndex = "idx_ref"

// Seed creates and fills the records table, or reuses it when the meta
// table records the same parameters (and the row count still matches).
func Seed(ctx context.Context, c SeedConfig) (SeedResult, error) {
	if err := c.Validate(); err != nil {
		return SeedResult{}, err
	}
	start := time.Now()
	db, err := sql.Open("mysql", c.DSN)
	if err != nil {
		return SeedResult{}, fmt.Errorf("seed: open: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(c.Workers + 1)
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+metaTable+
		" (table_name VARCHAR(64) PRIMARY KEY, params VARCHAR(512) NOT NULL, seeded_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"); err != nil {
		return SeedResult{}, fmt.Errorf("seed: create meta table: %w", err)
	}
	if !c.Force {
		var params string
		err := db.QueryRowContext(ctx, "SELECT params FROM "+metaTable+" WHERE table_name = ?", c.Table).Scan(&params)
		if err == nil && params == c.params() {
			var n uint64
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+c.Table).Scan(&n); err == nil && n == c.Rows {
				return SeedResult{Reused: true, Rows: n, Elapsed: time.Since(start)}, nil
			}
		}
	}
	stmts := []string{
		"DELETE FROM " + metaTable + " WHERE table_name = '" + c.Table + "'",
		"DROP TABLE IF EXISTS " + c.Table,
		"CREATE TABLE " + c.Table + " (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, version INT UNSIGNED NOT NULL, ref BIGINT UNSIGNED NOT NULL, payload VARBINARY(4096) NOT NULL, KEY " + RefIndex + " (ref)) ENGINE=InnoDB",
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return SeedResult{}, fmt.Errorf("seed: %s: %w", strings.Fields(s)[0], err)
		}
	}
	batches := make(chan uint64)
	errc := make(chan error, c.Workers)
	var wg sync.WaitGroup
	for w := 0; w < c.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := db.Conn(ctx)
			if err != nil {
				errc <- err
				return
			}
			defer conn.Close()
			// bulk-load settings for this session only
			_, _ = conn.ExecContext(ctx, "SET unique_checks=0, foreign_key_checks=0")
			var sb strings.Builder
			for first := range batches {
				sb.Reset()
				c.buildInsert(&sb, first)
				if err := execRetryingDeadlocks(ctx, conn, sb.String()); err != nil {
					errc <- fmt.Errorf("insert from id %d: %w", first, err)
					return
				}
			}
		}()
	}
	var sendErr error
loop:
	for first := uint64(1); first <= c.Rows; first += uint64(c.Batch) {
		select {
		case batches <- first:
		case err := <-errc:
			sendErr = err
			break loop
		case <-ctx.Done():
			sendErr = ctx.Err()
			break loop
		}
	}
	close(batches)
	wg.Wait()
	if sendErr == nil {
		select {
		case sendErr = <-errc:
		default:
		}
	}
	if sendErr != nil {
		return SeedResult{}, fmt.Errorf("seed: %w", sendErr)
	}
	if _, err := db.ExecContext(ctx, "REPLACE INTO "+metaTable+" (table_name, params) VALUES (?, ?)", c.Table, c.params()); err != nil {
		return SeedResult{}, fmt.Errorf("seed: record meta: %w", err)
	}
	return SeedResult{Rows: c.Rows, Elapsed: time.Since(start)}, nil
}

const payloadAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// buildInsert writes one multi-row INSERT. Payloads are drawn from an rng
// seeded by (seed, first id), so every batch is reproducible on its own and
// workers need no coordination; the alphabet needs no escaping.
func (c SeedConfig) buildInsert(sb *strings.Builder, first uint64) {
	rng := rand.New(rand.NewPCG(c.Seed, first))
	last := min(first+uint64(c.Batch)-1, c.Rows)
	sb.WriteString("INSERT INTO ")
	sb.WriteString(c.Table)
	sb.WriteString(" (id, version, ref, payload) VALUES ")
	for id := first; id <= last; id++ {
		if id > first {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		sb.WriteString(strconv.FormatUint(id, 10))
		sb.WriteString(",1,")
		sb.WriteString(strconv.FormatUint(RefFor(id), 10))
		sb.WriteString(",'")
		n := c.PayloadMin
		if c.PayloadMax > c.PayloadMin {
			n += rng.IntN(c.PayloadMax - c.PayloadMin + 1)
		}
		for i := 0; i < n; i++ {
			sb.WriteByte(payloadAlphabet[rng.IntN(len(payloadAlphabet))])
		}
		sb.WriteString("')")
	}
}

// execRetryingDeadlocks runs q, again when InnoDB picked it as a deadlock
// victim (1213): concurrent bulk inserts into a table with a secondary
// index can deadlock on its gap locks, and the victim's batch was rolled
// back whole, so running it again is safe.
func execRetryingDeadlocks(ctx context.Context, conn *sql.Conn, q string) error {
	var err error
	for try := 0; try < 5; try++ {
		if _, err = conn.ExecContext(ctx, q); err == nil {
			return nil
		}
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1213 {
			return err
		}
	}
	return err
}
