package database

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/firedrill-dev/firedrill/faults"
)

// TenantPrefix must begin every tenant schema prefix, so that dropping
// tenants can never touch a schema the harness did not create.
const TenantPrefix = "firedrill_"

// TenantTable is the table every tenant schema holds:
//
//	items(id BIGINT AUTO_INCREMENT PRIMARY KEY, tenant_id INT NOT NULL,
//	      qty INT NOT NULL, note VARCHAR(64) NOT NULL,
//	      updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))
//
// Write traffic inserts and updates it; the storm changes qty's type.
const TenantTable = "items"

// TenantSchema is the name of tenant i under prefix.
func TenantSchema(prefix string, i int) string { return fmt.Sprintf("%s%d", prefix, i) }

// CreateTenants creates count schemas prefix0..prefix{count-1}, each with
// TenantTable seeded with rows rows (replacing any that exist). prefix must
// start with TenantPrefix.
func (in *Injector) CreateTenants(ctx context.Context, prefix string, count, rows int) error {
	if err := checkPrefix(prefix); err != nil {
		return fmt.Errorf("database create tenants: %w", err)
	}
	if count < 1 || count > 10000 || rows < 0 || rows > 1_000_000 {
		return fmt.Errorf("database create tenants: count %d (1..10000) or rows %d (0..1e6) out of range", count, rows)
	}
	for i := 0; i < count; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("database create tenants: %w", err)
		}
		s := "`" + TenantSchema(prefix, i) + "`"
		for _, q := range []string{
			"DROP DATABASE IF EXISTS " + s,
			"CREATE DATABASE " + s,
			"CREATE TABLE " + s + "." + TenantTable + ` (
				id BIGINT AUTO_INCREMENT PRIMARY KEY,
				tenant_id INT NOT NULL,
				qty INT NOT NULL,
				note VARCHAR(64) NOT NULL,
				updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`,
		} {
			if err := in.exec(ctx, q); err != nil {
				return fmt.Errorf("database create tenant %s: %w", s, err)
			}
		}
		// Multi-row inserts of 500: one round trip per batch, far under
		// max_allowed_packet.
		for done := 0; done < rows; {
			n := min(500, rows-done)
			var b strings.Builder
			b.WriteString("INSERT INTO " + s + "." + TenantTable + " (tenant_id, qty, note) VALUES ")
			for j := 0; j < n; j++ {
				if j > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "(%d,%d,'note %d')", i, done+j, done+j)
			}
			if err := in.exec(ctx, b.String()); err != nil {
				return fmt.Errorf("database seed tenant %s: %w", s, err)
			}
			done += n
		}
	}
	return nil
}

// DropTenants drops every schema whose name starts with prefix (which must
// start with TenantPrefix) and returns how many it dropped.
func (in *Injector) DropTenants(ctx context.Context, prefix string) (int, error) {
	if err := checkPrefix(prefix); err != nil {
		return 0, fmt.Errorf("database drop tenants: %w", err)
	}
	schemas, err := in.tenantSchemas(ctx, prefix)
	if err != nil {
		return 0, fmt.Errorf("database drop tenants: %w", err)
	}
	for i, s := range schemas {
		if err := in.exec(ctx, "DROP DATABASE IF EXISTS `"+s+"`"); err != nil {
			return i, fmt.Errorf("database drop tenant %s: %w", s, err)
		}
	}
	return len(schemas), nil
}

func checkPrefix(prefix string) error {
	if !strings.HasPrefix(prefix, TenantPrefix) || !identRE.MatchString(prefix) {
		return fmt.Errorf("tenant prefix %q must start with %q and be a plain identifier", prefix, TenantPrefix)
	}
	return nil
}

// tenantSchemas lists schemas starting with prefix, in tenant order.
func (in *Injector) tenantSchemas(ctx context.Context, prefix string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	// LIKE treats _ as a wildcard: escape it so firedrill_t matches only
	// itself.
	like := strings.ReplaceAll(prefix, "_", `\_`) + "%"
	rows, err := in.db.QueryContext(ctx, `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA
		WHERE SCHEMA_NAME LIKE ? ORDER BY LENGTH(SCHEMA_NAME), SCHEMA_NAME`, like)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ownMarker starts the injector's own SELECTs, so a query killer (which
// matches statements by their first word) never kills the harness's work.
const ownMarker = "/* firedrill */ "

// Storm methods.
const (
	// StormDirect runs ALTER TABLE .. MODIFY in place: the table is rebuilt
	// and concurrent writes wait, as in incident 002.
	StormDirect = "direct"
	// StormCopy migrates by copy-table: shadow table with the new type,
	// chunked copy, atomic RENAME, as gh-ost and pt-online-schema-change
	// do. Writes only wait for one small chunk at a time. Unlike those tools
	// it does not replay changes made to rows already copied (no triggers,
	// no binlog): rows inserted during the copy are carried over after the
	// rename, updates to copied rows during the copy are lost. Fine for a
	// drill measuring write latency; not a production migration tool.
	StormCopy = "copy"
	// StormOnline migrates each table with Percona's
	// pt-online-schema-change (percona-toolkit on the host), as teams
	// migrate in production: a shadow table, triggers that replay every
	// write made during the copy, chunks sized to ChunkTime, --max-load
	// on Threads_running as the throttle (ThrottleThreadsRunning) and
	// --critical-load as the safety limit (CriticalThreadsRunning). No
	// acknowledged write is lost. It needs an injector opened with Open.
	StormOnline = "online"
)

// StormConfig configures a DDL storm. Zero fields take the defaults.
type StormConfig struct {
	// Prefix selects the tenant schemas (made by CreateTenants). Required.
	Prefix string
	// Method is StormDirect (default) or StormCopy.
	Method string
	// Column whose type changes (default "qty"), alternating between Types
	// on each pass over the tenants.
	Column string
	// Types the column alternates between (default BIGINT NOT NULL, INT NOT
	// NULL). Each must be a plain SQL type; checked against typeRE.
	Types []string
	// Concurrency is how many migrations run at once (default 2).
	Concurrency int
	// Passes over all tenants (default 1); each pass flips the type.
	Passes int
	// ChunkRows per copy chunk (StormCopy; default 500).
	ChunkRows int
	// Pause between two migrations of one worker (default 0).
	Pause time.Duration
	// ThrottleThreadsRunning: when > 0, a worker waits while the server's
	// Threads_running exceeds it (checked before every migration and copy
	// chunk) — throttling on load, as gh-ost's max-load does.
	ThrottleThreadsRunning int
	// CriticalThreadsRunning aborts an online migration when the server's
	// Threads_running exceeds it (StormOnline's --critical-load; default
	// 100): a safety limit far above the throttle, not the throttle.
	CriticalThreadsRunning int
	// ChunkTime is the time an online migration's chunk aims at
	// (--chunk-time; default 0.1 s).
	ChunkTime time.Duration
	// MaxDuration stops the storm on its own after this long (default 30m).
	MaxDuration time.Duration
}

// Storm is a running DDL storm.
type Storm struct {
	in     *Injector
	cfg    StormConfig
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	rec       faults.Recorder // where the remove event goes; see ReportTo
	migrated  int
	failed    int
	throttled time.Duration
	rows      int64
	lastErr   error
}

// StormStats is what a storm did.
type StormStats struct {
	Migrations  int     `json:"migrations"`
	Failed      int     `json:"failed"`
	RowsCopied  int64   `json:"rowsCopied"`
	ThrottledMs float64 `json:"throttledMs"` // waited on load, summed over workers
	Running     bool    `json:"running"`
	Error       string  `json:"error,omitempty"`
}

var typeRE = identRE // types are checked word by word against this

func checkType(t string) error {
	for _, w := range strings.Fields(t) {
		w = strings.TrimSuffix(strings.TrimPrefix(w, "("), ")")
		if w == "" {
			continue
		}
		// Allow INT, BIGINT, VARCHAR(64), DECIMAL(10,2), NOT, NULL.
		base, args, _ := strings.Cut(w, "(")
		if !typeRE.MatchString(base) {
			return fmt.Errorf("bad column type %q", t)
		}
		for _, a := range strings.Split(strings.TrimSuffix(args, ")"), ",") {
			if a != "" && strings.Trim(a, "0123456789") != "" {
				return fmt.Errorf("bad column type %q", t)
			}
		}
	}
	return nil
}

// StartDDLStorm starts cfg.Concurrency workers that change Column's type in
// every tenant schema, Passes times. It returns at once; the storm stops when
// done, on Stop, at ctx's end or after MaxDuration. An interrupted copy-table
// migration drops its shadow table; an in-flight ALTER finishes (bounded by
// the statement timeout) because killing it half way would only add a
// rollback to the load. Reported as ddl_storm inject/remove, target = prefix.
func (in *Injector) StartDDLStorm(ctx context.Context, cfg StormConfig) (*Storm, error) {
	if err := checkPrefix(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("database ddl storm: %w", err)
	}
	if cfg.Method == "" {
		cfg.Method = StormDirect
	}
	switch cfg.Method {
	case StormDirect, StormCopy:
	case StormOnline:
		if err := onlineReady(in); err != nil {
			return nil, fmt.Errorf("database ddl storm: %w", err)
		}
	default:
		return nil, fmt.Errorf("database ddl storm: unknown method %q (want direct, copy or online)", cfg.Method)
	}
	if cfg.Column == "" {
		cfg.Column = "qty"
	}
	if _, err := ident("column", cfg.Column); err != nil {
		return nil, fmt.Errorf("database ddl storm: %w", err)
	}
	if len(cfg.Types) == 0 {
		cfg.Types = []string{"BIGINT NOT NULL", "INT NOT NULL"}
	}
	for _, t := range cfg.Types {
		if err := checkType(t); err != nil {
			return nil, fmt.Errorf("database ddl storm: %w", err)
		}
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	cfg.Concurrency = min(cfg.Concurrency, 32)
	if cfg.Passes <= 0 {
		cfg.Passes = 1
	}
	if cfg.ChunkRows <= 0 {
		cfg.ChunkRows = 500
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = 30 * time.Minute
	}
	if cfg.CriticalThreadsRunning <= 0 {
		cfg.CriticalThreadsRunning = 100
	}
	if cfg.ChunkTime <= 0 {
		cfg.ChunkTime = 100 * time.Millisecond
	}
	schemas, err := in.tenantSchemas(ctx, cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("database ddl storm: %w", err)
	}
	if len(schemas) == 0 {
		return nil, fmt.Errorf("database ddl storm: no schemas start with %q (CreateTenants first)", cfg.Prefix)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.MaxDuration)
	// Stop also when the caller's context ends, but after detaching, so a
	// cancelled context does not abort the in-flight statement mid-way.
	stopOnDone := context.AfterFunc(ctx, cancel)
	s := &Storm{in: in, cfg: cfg, cancel: func() { stopOnDone(); cancel() }, done: make(chan struct{}), rec: in.rec}
	in.st.mu.Lock()
	in.st.storms[s] = true
	in.st.mu.Unlock()
	in.event(FaultDDLStorm, faults.Inject, cfg.Prefix, cfg.Method)

	type job struct {
		schema string
		typ    string
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				err := s.migrate(sctx, j.schema, j.typ)
				s.mu.Lock()
				if err != nil {
					if sctx.Err() == nil {
						s.failed++
						s.lastErr = err
					}
				} else {
					s.migrated++
				}
				s.mu.Unlock()
				if cfg.Pause > 0 {
					select {
					case <-sctx.Done():
					case <-time.After(cfg.Pause):
					}
				}
			}
		}()
	}
	go func() {
		// The storm ends here however it ends (done, stopped, context over,
		// MaxDuration): the timeline gets its remove event then.
		defer s.finish()
		defer wg.Wait()
		defer close(jobs)
		for p := 0; p < cfg.Passes; p++ {
			for _, sc := range schemas {
				select {
				case <-sctx.Done():
					return
				case jobs <- job{sc, cfg.Types[p%len(cfg.Types)]}:
				}
			}
		}
	}()
	return s, nil
}

// throttle waits while the server is above the load threshold.
func (s *Storm) throttle(ctx context.Context) error {
	if s.cfg.ThrottleThreadsRunning <= 0 {
		return nil
	}
	start := time.Now()
	defer func() {
		s.mu.Lock()
		s.throttled += time.Since(start)
		s.mu.Unlock()
	}()
	for {
		var name string
		var running int
		if err := s.in.scan(ctx, "SHOW GLOBAL STATUS LIKE 'Threads_running'", nil, &name, &running); err != nil {
			return err
		}
		if running <= s.cfg.ThrottleThreadsRunning {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Storm) migrate(ctx context.Context, schema, typ string) error {
	if err := s.throttle(ctx); err != nil {
		return err
	}
	col := "`" + s.cfg.Column + "`"
	tbl := "`" + schema + "`." + TenantTable
	if s.cfg.Method == StormDirect {
		// Detached from ctx: an ALTER is left to finish (bounded by the
		// timeout) rather than aborted half way.
		return s.in.exec(context.WithoutCancel(ctx), fmt.Sprintf("ALTER TABLE %s MODIFY %s %s", tbl, col, typ))
	}
	if s.cfg.Method == StormOnline {
		return s.online(ctx, schema, typ)
	}
	return s.copyTable(ctx, schema, col, typ)
}

// copyTable migrates one tenant's table by shadow table, chunked copy and an
// atomic RENAME.
func (s *Storm) copyTable(ctx context.Context, schema, col, typ string) (err error) {
	in := s.in
	base := "`" + schema + "`."
	tbl, shadow, old := base+TenantTable, base+"_"+TenantTable+"_new", base+"_"+TenantTable+"_old"
	// Whatever happens, no shadow or old table is left behind.
	defer func() {
		cctx := context.WithoutCancel(ctx)
		if e := in.exec(cctx, "DROP TABLE IF EXISTS "+shadow+", "+old); e != nil && err == nil {
			err = e
		}
	}()
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + shadow + ", " + old,
		"CREATE TABLE " + shadow + " LIKE " + tbl,
		fmt.Sprintf("ALTER TABLE %s MODIFY %s %s", shadow, col, typ),
	} {
		if err := in.exec(ctx, q); err != nil {
			return fmt.Errorf("copy-table %s: %w", schema, err)
		}
	}
	var last int64
	for chunks := 0; chunks < 1_000_000; chunks++ {
		if err := s.throttle(ctx); err != nil {
			return err
		}
		var hi *int64
		if err := in.scan(ctx, fmt.Sprintf(ownMarker+"SELECT MAX(id) FROM (SELECT id FROM %s WHERE id > ? ORDER BY id LIMIT %d) c", tbl, s.cfg.ChunkRows),
			[]any{last}, &hi); err != nil {
			return fmt.Errorf("copy-table %s: chunk bound: %w", schema, err)
		}
		if hi == nil {
			break
		}
		if err := in.exec(ctx, fmt.Sprintf("INSERT INTO %s SELECT * FROM %s WHERE id > ? AND id <= ?", shadow, tbl), last, *hi); err != nil {
			return fmt.Errorf("copy-table %s: copy chunk: %w", schema, err)
		}
		s.mu.Lock()
		s.rows += *hi - last
		s.mu.Unlock()
		last = *hi
	}
	if err := in.exec(ctx, fmt.Sprintf("RENAME TABLE %s TO %s, %s TO %s", tbl, old, shadow, tbl)); err != nil {
		return fmt.Errorf("copy-table %s: rename: %w", schema, err)
	}
	// Rows inserted between the last chunk and the rename are in the old
	// table only: carry them over.
	if err := in.exec(context.WithoutCancel(ctx), fmt.Sprintf("INSERT IGNORE INTO %s SELECT * FROM %s WHERE id > ?", tbl, old), last); err != nil {
		return fmt.Errorf("copy-table %s: catch up: %w", schema, err)
	}
	return nil
}

// Wait blocks until the storm ends or ctx does, and returns its stats.
func (s *Storm) Wait(ctx context.Context) (StormStats, error) {
	select {
	case <-s.done:
		return s.Stop(), nil
	case <-ctx.Done():
		return s.Stats(), ctx.Err()
	}
}

func (s *Storm) finish() {
	s.in.st.mu.Lock()
	delete(s.in.st.storms, s)
	s.in.st.mu.Unlock()
	s.mu.Lock()
	rec := s.rec
	s.mu.Unlock()
	rec.Record(faults.Event{Fault: FaultDDLStorm, Action: faults.Remove, Target: s.cfg.Prefix, Name: s.cfg.Method})
	s.cancel() // release the timer and the AfterFunc
	close(s.done)
}

// ReportTo sends the storm's remove event to r instead of the recorder of
// the injector that started it: the k6 extension reports it from the VU
// that stops the storm, whose context is still live.
func (s *Storm) ReportTo(r faults.Recorder) {
	s.mu.Lock()
	s.rec = r
	s.mu.Unlock()
}

// Stop stops the storm, waits for in-flight work and returns its stats; safe
// to call twice and after the storm ended by itself.
func (s *Storm) Stop() StormStats {
	s.cancel()
	<-s.done
	return s.Stats()
}

// Stats reports progress so far.
func (s *Storm) Stats() StormStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	running := true
	select {
	case <-s.done:
		running = false
	default:
	}
	st := StormStats{Migrations: s.migrated, Failed: s.failed, RowsCopied: s.rows,
		ThrottledMs: float64(s.throttled.Microseconds()) / 1000, Running: running}
	if s.lastErr != nil {
		st.Error = s.lastErr.Error()
	}
	return st
}
