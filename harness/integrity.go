package harness

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // the admin connection's driver

	fdb "github.com/firedrill-dev/firedrill/faults/database"
	"github.com/firedrill-dev/firedrill/reports"
	"github.com/firedrill-dev/firedrill/traffic"
)

// tenantTotal is one tenant table as the harness read it at the end of a
// run: its rows and the sum of their qty column.
type tenantTotal struct {
	Rows int64 `json:"rows"`
	Sum  int64 `json:"sum_qty"`
}

// rise is how much the table's qty grew since it was seeded: createTenants
// seeds row i with qty i (0..rows-1), and every tenant write adds 1.
func (t tenantTotal) rise() int64 { return t.Sum - t.Rows*(t.Rows-1)/2 }

// tenantSnapshot is tenants.json in the run folder: every tenant table a
// replay wrote to, read over the admin connection after k6 exited (its
// teardown must leave the tables) and before the environment is removed.
type tenantSnapshot struct {
	Read   time.Time              `json:"read"`
	Tables map[string]tenantTotal `json:"tables"`
	Error  string                 `json:"error,omitempty"`
}

// tenantSchemas are the tenant schemas the replays wrote to, from the
// tallies in their ledgers.
func (c *collector) tenantSchemas() []string {
	seen := map[string]bool{}
	for _, t := range c.ledger {
		for key := range t.counts {
			if rest, ok := strings.CutPrefix(key, "tenant/"); ok {
				if schema, _, ok := strings.Cut(rest, "/"); ok {
					seen[schema] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// tenantTally is the sum over the run of one tenant's ledger count what
// ("sent" or "acked").
func (c *collector) tenantTally(schema, what string) int64 {
	key := traffic.TenantCountKey(schema, what)
	var n int64
	for _, t := range c.ledger {
		n += t.counts[key]
	}
	return n
}

// snapshotTenants reads each schema's tenant table over dsn (the admin
// connection: faults and max_connections do not stand in its way). A
// failure is kept in the snapshot: the integrity check then has no data.
func snapshotTenants(ctx context.Context, dsn string, schemas []string) *tenantSnapshot {
	s := &tenantSnapshot{Tables: map[string]tenantTotal{}}
	if len(schemas) == 0 {
		return s
	}
	// a fresh context: the run's may be cancelled, and the read must still
	// happen before the environment goes
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		s.Error = fmt.Sprintf("read tenant tables: %v", err)
		return s
	}
	defer db.Close()
	for _, schema := range schemas {
		if !strings.HasPrefix(schema, fdb.TenantPrefix) || strings.ContainsAny(schema, "`.") {
			s.Error = fmt.Sprintf("read tenant tables: %q is not a tenant schema", schema)
			return s
		}
		var t tenantTotal
		q := "SELECT COUNT(*), COALESCE(SUM(qty), 0) FROM `" + schema + "`." + fdb.TenantTable
		if err := db.QueryRowContext(ctx, q).Scan(&t.Rows, &t.Sum); err != nil {
			s.Error = fmt.Sprintf("read tenant table %s: %v", schema, err)
			return s
		}
		s.Tables[schema] = t
	}
	s.Read = time.Now().UTC()
	return s
}

// readTenants is the snapshot the run took of the tenant tables its
// replays wrote to: read now, over the admin DSN, and kept in dir as
// tenants.json. Called after k6 exited and before the environment goes.
func (c *collector) readTenants(ctx context.Context, adminDSN, dir string) error {
	schemas := c.tenantSchemas()
	c.tenants = snapshotTenants(ctx, adminDSN, schemas)
	if len(schemas) == 0 {
		return nil
	}
	return c.tenants.write(filepath.Join(dir, "tenants.json"))
}

// write saves the snapshot as path, atomically.
func (s *tenantSnapshot) write(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return reports.WriteFileAtomic(path, append(b, '\n'))
}

// integrityMetrics are the check metrics of the tenants' writes; they
// judge the whole run whatever the phase.
var integrityMetrics = []string{"writes_sent", "writes_acked", "writes_rise", "writes_lost", "writes_phantom", "integrity_violations"}

// integrityMetric is one of integrityMetrics, over the tenants selected
// by sel ({tenant=<schema>}; all by default). No data without a snapshot
// of the tables or without tenant writes.
func (c *collector) integrityMetric(name string, sel map[string]string) (float64, bool) {
	if c.tenants == nil || c.tenants.Error != "" {
		return 0, false
	}
	schemas := c.tenantSchemas()
	if len(schemas) == 0 {
		return 0, false
	}
	var v int64
	for _, s := range schemas {
		if want := sel["tenant"]; want != "" && want != s {
			continue
		}
		t, ok := c.tenants.Tables[s]
		if !ok {
			return 0, false
		}
		sent, acked, rise := c.tenantTally(s, "sent"), c.tenantTally(s, "acked"), t.rise()
		switch name {
		case "writes_sent":
			v += sent
		case "writes_acked":
			v += acked
		case "writes_rise":
			v += rise
		case "writes_lost":
			v += max(0, acked-rise)
		case "writes_phantom":
			v += max(0, rise-sent)
		case "integrity_violations":
			v += max(0, acked-rise) + max(0, rise-sent)
		}
	}
	return float64(v), true
}

// integrityNote names the tenants that break acknowledged <= rise <= sent.
func (c *collector) integrityNote() string {
	if c.tenants == nil {
		return "the tenant tables were not read (no database at the end of the run)"
	}
	if c.tenants.Error != "" {
		return c.tenants.Error
	}
	if len(c.tenantSchemas()) == 0 {
		return "no tenant write ran: nothing to compare with the tables"
	}
	var bad []string
	for _, s := range c.tenantSchemas() {
		t, ok := c.tenants.Tables[s]
		if !ok {
			continue
		}
		sent, acked, rise := c.tenantTally(s, "sent"), c.tenantTally(s, "acked"), t.rise()
		if acked > rise || rise > sent {
			bad = append(bad, fmt.Sprintf("%s: %d acknowledged, rise %d, %d sent", s, acked, rise, sent))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return "acknowledged <= rise <= sent broken in " + strings.Join(bad, "; ")
}
