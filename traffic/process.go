package traffic

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/format"
	"github.com/firedrill-dev/firedrill/traffic/memcache"
)

// worker state: its own rng (seeded from the run seed) and buffers.
type worker struct {
	e    *Engine
	idx  int
	rng  *rand.Rand
	buf  []byte
	vbuf []byte // reused for values read by fetch: a hit allocates nothing
	kind opKind // the operation being worked, for the errors' op tag
	// due is the operation's due time: its latencies, database queries
	// included, belong to the ledger bucket of its arrival.
	due time.Time
	// what became of the operation: the first error that lost its answer
	// (its class index, -1 while none), and whether it was served stale
	failClass int
	stale     bool
}

func (e *Engine) worker(ctx context.Context, idx int, work <-chan op) {
	w := &worker{e: e, idx: idx, rng: rand.New(rand.NewPCG(e.cfg.Seed, uint64(idx)+1))}
	for o := range work {
		if ctx.Err() != nil {
			// drain without working: the run is being cancelled
			e.stats.ledger.finish(idx, o.intended, o.kind, Unfinished, 0, false)
			continue
		}
		late := time.Since(o.intended) > e.cfg.LateAfter
		if late {
			e.stats.late.Add(1)
		}
		fleet := *e.fleet.Load()
		p := fleet[int(o.proc)%len(fleet)]
		w.kind, w.due, w.failClass, w.stale = o.kind, o.intended, -1, false
		switch o.kind {
		case opFetch:
			w.fetch(ctx, p, len(fleet), o.id)
		case opMulti:
			w.fetchMulti(ctx, p, len(fleet), o.ids)
		case opWrite:
			w.write(ctx, p, o.id)
		case opLookup:
			w.lookup(ctx, p, o.id)
		case opTenantWrite:
			w.tenantWrite(ctx, p, o.id)
		}
		d := time.Since(o.intended)
		switch o.kind {
		case opFetch, opMulti:
			e.stats.record(idx, o.intended, d, hFetch)
		case opWrite, opTenantWrite:
			e.stats.record(idx, o.intended, d, hWrite)
		case opLookup:
			e.stats.record(idx, o.intended, d, hLookup)
		}
		e.stats.ledger.finish(idx, o.intended, o.kind, w.outcome(ctx), max(w.failClass, 0), late)
	}
}

// outcome is how the operation just worked ended.
func (w *worker) outcome(ctx context.Context) Outcome {
	switch {
	case ctx.Err() != nil:
		return Unfinished
	case w.failClass == classIndex(ClassShed):
		return Shed
	case w.failClass >= 0:
		return Failed
	case w.stale:
		return Stale
	}
	return Served
}

// countErr counts an error that did not cost the operation its answer (a
// cache error before a good database read, a set that did not land).
func (w *worker) countErr(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil {
		return // errors caused by the run ending are not the system's
	}
	w.e.stats.errorClass(w.kind, Classify(err))
}

// fail counts an error that lost the operation its answer: the operation
// ends failed (or shed) with the class of its first such error.
func (w *worker) fail(ctx context.Context, err error) {
	if err == nil {
		return
	}
	w.countErr(ctx, err)
	w.failed(Classify(err))
}

// failed marks the operation failed with class without counting an error
// (a caller waiting on a coalesced fill whose leader counted it).
func (w *worker) failed(class string) {
	if w.failClass < 0 {
		w.failClass = classIndex(class)
	}
}

// row is a database record.
type row struct {
	version uint32
	payload []byte
}

func (e *Engine) rowID(id uint64) uint64 { return id%e.cfg.Rows + 1 }

// load reads one row through process p's pool, retried as cfg.Retry says.
func (w *worker) load(ctx context.Context, p *process, id uint64) (row, error) {
	return retrying(ctx, w, p, func() (row, error) { return w.loadOnce(ctx, p, id) })
}

// loadOnce is one attempt of load.
func (w *worker) loadOnce(ctx context.Context, p *process, id uint64) (row, error) {
	e := w.e
	if !p.admit(e.prot.Load().DBLimit) {
		return row{}, errShed
	}
	defer p.busy.Add(-1)
	e.stats.dbEnter()
	defer e.stats.dbLeave()
	qctx, cancel := context.WithTimeout(ctx, e.cfg.DBTimeout)
	defer cancel()
	e.stats.add(p.idx, cDBQueries, 1) // counted when issued: demand on the database
	t0 := time.Now()
	var r row
	err := p.db.QueryRowContext(qctx, "SELECT version, payload FROM "+e.cfg.Table+" WHERE id = ?"+e.delayClause(), e.rowID(id)).Scan(&r.version, &r.payload)
	e.stats.record(w.idx, w.due, time.Since(t0), hDB)
	if err != nil {
		return row{}, fmt.Errorf("select row %d: %w", id, err)
	}
	return r, nil
}

// ttl draws an entry's TTL: the configured TTL, shortened by up to
// TTLJitter when that protection is on.
func (w *worker) ttl(prot *Protections) time.Duration {
	t := w.e.cfg.TTL
	if prot.TTLJitter > 0 {
		t = time.Duration(float64(t) * (1 - prot.TTLJitter*w.rng.Float64()))
	}
	return t
}

// encodeEntry builds the bytes and the memcached TTL of a fresh entry.
func (w *worker) encodeEntry(prot *Protections, v format.Version, r row, fill time.Duration) ([]byte, int) {
	ttl := w.ttl(prot)
	memTTL := ttl + prot.StaleWhileRevalidate
	b, _ := format.Encode(w.buf[:0], format.Entry{
		Version: v, ExpiresAt: time.Now().Add(ttl).UnixMilli(),
		FillMillis: uint32(fill.Milliseconds()), RowVersion: r.version, Payload: r.payload,
	})
	w.buf = b
	return b, ttlSeconds(memTTL)
}

// fillOnce loads id and stores its entry; it is the unit coalescing
// shares. It returns the error that lost the row (the read); a set that
// does not land is counted here and costs only the cache entry.
func (w *worker) fillOnce(ctx context.Context, p *process, key string, id uint64, v format.Version) error {
	prot := w.e.prot.Load()
	if prot.FillLock {
		return w.fillLocked(ctx, p, key, id, v, prot)
	}
	t0 := time.Now()
	r, err := w.load(ctx, p, id)
	if err != nil {
		return err
	}
	b, ttl := w.encodeEntry(prot, v, r, time.Since(t0))
	if prot.Leases {
		w.countErr(ctx, w.e.cache.MetaSet(ctx, key, b, ttl))
	} else {
		w.countErr(ctx, w.e.cache.Set(ctx, key, b, ttl))
	}
	return nil
}

// fill runs fillOnce, coalesced per process when that protection is on.
// A caller that waited on another's fill shares its outcome: when that
// fill failed, so did the caller's operation (the error counted once, by
// the filler).
func (w *worker) fill(ctx context.Context, p *process, key string, id uint64, v format.Version) {
	if w.e.prot.Load().Coalesce {
		leader := false
		_, err, _ := p.group.Do(key+"|"+v.String(), func() (any, error) {
			leader = true
			return nil, w.fillOnce(ctx, p, key, id, v)
		})
		if !leader {
			w.e.stats.add(p.idx, cCoalesced, 1)
			if err != nil {
				w.failed(Classify(err))
			}
			return
		}
		w.fail(ctx, err)
		return
	}
	w.fail(ctx, w.fillOnce(ctx, p, key, id, v))
}

// fillLocked is IdentityCache's fill lock: the winner of an add on the
// lock key fills; losers wait and re-read, then fall back to the database
// without writing (so a slow filler is not overwritten by stale loads).
func (w *worker) fillLocked(ctx context.Context, p *process, key string, id uint64, v format.Version, prot *Protections) error {
	mc := w.e.cache
	lockKey := key + ":lock"
	lockTTL := ttlSeconds(time.Duration(prot.FillLockTries+1)*prot.FillLockWait + w.e.cfg.DBTimeout)
	err := mc.Add(ctx, lockKey, []byte("1"), lockTTL)
	switch {
	case err == nil:
		t0 := time.Now()
		r, err := w.load(ctx, p, id)
		if err != nil {
			_ = mc.Delete(ctx, lockKey)
			return err
		}
		b, ttl := w.encodeEntry(prot, v, r, time.Since(t0))
		w.countErr(ctx, mc.Set(ctx, key, b, ttl))
		_ = mc.Delete(ctx, lockKey)
		return nil
	case errors.Is(err, memcache.ErrNotStored):
		reader := format.Reader{Version: v, Compatible: prot.CompatRead}
		for i := 0; i < prot.FillLockTries; i++ {
			w.e.stats.add(p.idx, cFillWaits, 1)
			if !sleepCtx(ctx, prot.FillLockWait) {
				return ctx.Err()
			}
			val, err := mc.Get(ctx, key)
			if err == nil {
				if _, derr := reader.Decode(val); derr == nil {
					return nil
				}
			}
		}
		_, err = w.load(ctx, p, id)
		return err
	default:
		w.countErr(ctx, err)
		_, err = w.load(ctx, p, id)
		return err
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// xfetchDue is XFetch's test: refresh early when
// now - delta*beta*ln(U) >= expiry.
func (w *worker) xfetchDue(ent format.Entry, now time.Time, beta float64) bool {
	delta := float64(max(ent.FillMillis, 1))
	u := w.rng.Float64()
	if u == 0 {
		u = math.SmallestNonzeroFloat64
	}
	return float64(now.UnixMilli())-delta*beta*math.Log(u) >= float64(ent.ExpiresAt)
}

// fetch is IdentityCache's fetch: get, and on a miss (or an entry this
// process cannot decode) read through and fill.
func (w *worker) fetch(ctx context.Context, p *process, nprocs int, id uint64) {
	e := w.e
	prot := e.prot.Load()
	key := e.kb.Key(id)
	srv := e.cache.ServerIndex(key)
	reader := e.readerFor(p, nprocs)
	cur := reader.Version == format.Current
	e.stats.fetch(p.idx, srv, cur, fFetches)
	if prot.Leases {
		w.fetchLeased(ctx, p, key, id, srv, reader, prot)
		return
	}
	val, err := e.cache.GetInto(ctx, key, w.vbuf)
	if err == nil {
		w.vbuf = val // the decoded entry is used only within this fetch
		ent, derr := reader.Decode(val)
		switch {
		case derr == nil:
			now := time.Now()
			if now.UnixMilli() < ent.ExpiresAt {
				if prot.XFetch && w.xfetchDue(ent, now, prot.XFetchBeta) {
					e.stats.add(p.idx, cEarly, 1)
					e.stats.fetch(p.idx, srv, cur, fHits)
					w.fill(ctx, p, key, id, reader.Version)
					return
				}
				e.stats.fetch(p.idx, srv, cur, fHits)
				return
			}
			if prot.StaleWhileRevalidate > 0 {
				w.stale = true
				e.stats.add(p.idx, cStaleServed, 1)
				e.stats.fetch(p.idx, srv, cur, fHits)
				w.refreshInBackground(p, key, id, reader.Version)
				return
			}
		case errors.Is(derr, format.ErrForeign):
			// the incident: an entry in the other format is a miss
		default:
			w.countErr(ctx, derr)
		}
	} else if !errors.Is(err, memcache.ErrCacheMiss) {
		w.countErr(ctx, err)
	}
	e.stats.fetch(p.idx, srv, cur, fMisses)
	w.fill(ctx, p, key, id, reader.Version)
}

// refreshInBackground starts at most one refresh per key per process, and
// at most 64 at once over the engine, so stale serving cannot fan out.
func (w *worker) refreshInBackground(p *process, key string, id uint64, v format.Version) {
	e := w.e
	if _, busy := p.refresh.LoadOrStore(key, struct{}{}); busy {
		return
	}
	select {
	case e.bgSem <- struct{}{}:
	default:
		p.refresh.Delete(key)
		return
	}
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		defer func() { <-e.bgSem }()
		defer p.refresh.Delete(key)
		bw := &worker{e: e, idx: w.idx, rng: rand.New(rand.NewPCG(e.cfg.Seed, id)), kind: w.kind, due: w.due, failClass: -1}
		bw.countErr(e.runCtx, bw.fillOnce(e.runCtx, p, key, id, v))
	}()
}

// fetchLeased uses memcached leases: mg with N vivifies a miss so exactly
// one client wins (W) and fills; the others see an empty placeholder (Z)
// and wait, re-read, then fall back to the database without writing.
func (w *worker) fetchLeased(ctx context.Context, p *process, key string, id uint64, srv int, reader format.Reader, prot *Protections) {
	e := w.e
	cur := reader.Version == format.Current
	vivify := ttlSeconds(prot.LeaseTTL)
	for try := 0; ; try++ {
		r, err := e.cache.MetaGet(ctx, key, vivify, 0)
		if err != nil {
			w.countErr(ctx, err)
			e.stats.fetch(p.idx, srv, cur, fMisses)
			_, err = w.load(ctx, p, id)
			w.fail(ctx, err)
			return
		}
		if r.Found && len(r.Value) > 0 {
			ent, derr := reader.Decode(r.Value)
			if derr == nil && (time.Now().UnixMilli() < ent.ExpiresAt || prot.StaleWhileRevalidate > 0) {
				if time.Now().UnixMilli() >= ent.ExpiresAt {
					w.stale = true
					e.stats.add(p.idx, cStaleServed, 1)
					w.refreshInBackground(p, key, id, reader.Version)
				}
				e.stats.fetch(p.idx, srv, cur, fHits)
				return
			}
			if derr != nil && !errors.Is(derr, format.ErrForeign) {
				w.countErr(ctx, derr)
			}
			// expired or foreign: refill; a foreign value does not carry a
			// lease, so this reader refills like the incident's did.
			e.stats.fetch(p.idx, srv, cur, fMisses)
			w.fill(ctx, p, key, id, reader.Version)
			return
		}
		if r.Won || !r.Found {
			e.stats.add(p.idx, cLeaseWon, 1)
			e.stats.fetch(p.idx, srv, cur, fMisses)
			w.fill(ctx, p, key, id, reader.Version)
			return
		}
		// empty placeholder held by another client
		if try >= prot.LeaseTries {
			e.stats.fetch(p.idx, srv, cur, fMisses)
			_, err = w.load(ctx, p, id)
			w.fail(ctx, err)
			return
		}
		e.stats.add(p.idx, cFillWaits, 1)
		if !sleepCtx(ctx, prot.LeaseWait) {
			return
		}
	}
}

// fetchMulti is IdentityCache's fetch_multi: one multi-get, one multi-row
// SELECT for all misses, then a set per miss. It takes no lock.
func (w *worker) fetchMulti(ctx context.Context, p *process, nprocs int, ids []uint64) {
	e := w.e
	prot := e.prot.Load()
	reader := e.readerFor(p, nprocs)
	cur := reader.Version == format.Current
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = e.kb.Key(id)
		e.stats.fetch(p.idx, e.cache.ServerIndex(keys[i]), cur, fFetches)
	}
	hit := make(map[string]bool, len(keys))
	err := e.cache.GetMulti(ctx, keys, func(k string, v []byte) {
		ent, derr := reader.Decode(v)
		if derr == nil && time.Now().UnixMilli() < ent.ExpiresAt {
			hit[k] = true
		} else if derr != nil && !errors.Is(derr, format.ErrForeign) {
			w.countErr(ctx, derr)
		}
	})
	w.countErr(ctx, err)
	var missIDs []uint64
	var missKeys []string
	for i, k := range keys {
		if hit[k] {
			e.stats.fetch(p.idx, e.cache.ServerIndex(k), cur, fHits)
			continue
		}
		e.stats.fetch(p.idx, e.cache.ServerIndex(k), cur, fMisses)
		missIDs = append(missIDs, ids[i])
		missKeys = append(missKeys, k)
	}
	if len(missIDs) == 0 {
		return
	}
	t0 := time.Now()
	rows, err := w.loadMany(ctx, p, missIDs)
	if err != nil {
		w.fail(ctx, err)
		return
	}
	fillDur := time.Since(t0)
	for i, id := range missIDs {
		r, ok := rows[e.rowID(id)]
		if !ok {
			continue
		}
		b, ttl := w.encodeEntry(prot, reader.Version, r, fillDur)
		w.countErr(ctx, e.cache.Set(ctx, missKeys[i], b, ttl))
	}
}

func (w *worker) loadMany(ctx context.Context, p *process, ids []uint64) (map[uint64]row, error) {
	return retrying(ctx, w, p, func() (map[uint64]row, error) { return w.loadManyOnce(ctx, p, ids) })
}

// loadManyOnce is one attempt of loadMany.
func (w *worker) loadManyOnce(ctx context.Context, p *process, ids []uint64) (map[uint64]row, error) {
	e := w.e
	if !p.admit(e.prot.Load().DBLimit) {
		return nil, errShed
	}
	defer p.busy.Add(-1)
	e.stats.dbEnter()
	defer e.stats.dbLeave()
	var sb strings.Builder
	sb.WriteString("SELECT id, version, payload FROM ")
	sb.WriteString(e.cfg.Table)
	sb.WriteString(" WHERE id IN (")
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatUint(e.rowID(id), 10))
	}
	sb.WriteByte(')')
	sb.WriteString(e.delayClause())
	qctx, cancel := context.WithTimeout(ctx, e.cfg.DBTimeout)
	defer cancel()
	e.stats.add(p.idx, cDBQueries, 1)
	t0 := time.Now()
	out := make(map[uint64]row, len(ids))
	rs, err := p.db.QueryContext(qctx, sb.String())
	if err == nil {
		for rs.Next() {
			var id uint64
			var r row
			if err = rs.Scan(&id, &r.version, &r.payload); err != nil {
				break
			}
			out[id] = r
		}
		if err == nil {
			err = rs.Err()
		}
		_ = rs.Close()
	}
	e.stats.record(w.idx, w.due, time.Since(t0), hDB)
	if err != nil {
		return nil, fmt.Errorf("select %d rows: %w", len(ids), err)
	}
	return out, nil
}

// lookup is a query by the indexed ref column that no cache fronts, as an
// app's find-by-external-id: cheap through idx_ref, a full scan of the
// table without it (the plan-regression fault). It goes through the
// process's pool and the DB limit like a fill, so a slow lookup takes
// connections from reads, which is how one bad plan hurts every query.
func (w *worker) lookup(ctx context.Context, p *process, id uint64) {
	e := w.e
	if !p.admit(e.prot.Load().DBLimit) {
		w.fail(ctx, errShed)
		return
	}
	defer p.busy.Add(-1)
	e.stats.dbEnter()
	defer e.stats.dbLeave()
	qctx, cancel := context.WithTimeout(ctx, e.cfg.DBTimeout)
	defer cancel()
	e.stats.add(p.idx, cLookups, 1)
	var got, version uint64
	err := p.db.QueryRowContext(qctx, e.lookupQuery, RefFor(e.rowID(id))).Scan(&got, &version)
	if err != nil {
		w.fail(ctx, fmt.Errorf("lookup ref of row %d: %w", id, err))
	}
}

// tenantWrite updates one row of one tenant's table (the per-tenant
// schemas database.createTenants makes): the writes a DDL storm on those
// tables gets in the way of. n picks tenant n / TenantRows and row
// n % TenantRows + 1.
func (w *worker) tenantWrite(ctx context.Context, p *process, n uint64) {
	e := w.e
	rows := uint64(e.cfg.TenantRows)
	tenant, id := int(n/rows), n%rows+1
	e.stats.dbEnter()
	qctx, cancel := context.WithTimeout(ctx, e.cfg.DBTimeout)
	t0 := time.Now()
	_, err := p.db.ExecContext(qctx, e.tenantUpdates[tenant], id)
	cancel()
	e.stats.record(w.idx, w.due, time.Since(t0), hDB)
	e.stats.dbLeave()
	e.stats.add(p.idx, cDBQueries, 1)
	e.stats.add(p.idx, cTenantWrites, 1)
	if err != nil {
		w.fail(ctx, fmt.Errorf("update tenant %d row %d: %w", tenant, id, err))
	}
}

// write updates a row and invalidates its entry, as IdentityCache's
// after-commit expiry does.
func (w *worker) write(ctx context.Context, p *process, id uint64) {
	e := w.e
	e.stats.dbEnter()
	qctx, cancel := context.WithTimeout(ctx, e.cfg.DBTimeout)
	t0 := time.Now()
	_, err := p.db.ExecContext(qctx, "UPDATE "+e.cfg.Table+" SET version = version + 1 WHERE id = ?", e.rowID(id))
	cancel()
	e.stats.record(w.idx, w.due, time.Since(t0), hDB)
	e.stats.dbLeave()
	e.stats.add(p.idx, cDBQueries, 1)
	if err != nil {
		w.fail(ctx, fmt.Errorf("update row %d: %w", id, err))
		return
	}
	w.countErr(ctx, e.cache.Delete(ctx, e.kb.Key(id)))
}

// warm fills the n most popular keys at one instant (setup, not counted in
// metrics), in the fleet's initial format, each with the drawn TTL.
func (e *Engine) warm(ctx context.Context, n int) error {
	db, err := sql.Open("mysql", e.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(4)
	ids := HotSetIDs(n, e.cfg.Keys)
	w := &worker{e: e, rng: rand.New(rand.NewPCG(e.cfg.Seed, 0x7761726d))}
	prot := e.prot.Load()
	v := e.cfg.Format
	const batch = 500
	for i := 0; i < len(ids); i += batch {
		chunk := ids[i:min(i+batch, len(ids))]
		rows, err := w.loadManyDB(ctx, db, chunk)
		if err != nil {
			return err
		}
		for _, id := range chunk {
			r := rows[e.rowID(id)]
			b, ttl := w.encodeEntry(prot, v, r, time.Millisecond+e.cfg.QueryDelay)
			if err := e.cache.Set(ctx, e.kb.Key(id), b, ttl); err != nil {
				return fmt.Errorf("set: %w", err)
			}
		}
	}
	return nil
}

func (w *worker) loadManyDB(ctx context.Context, db *sql.DB, ids []uint64) (map[uint64]row, error) {
	var sb strings.Builder
	sb.WriteString("SELECT id, version, payload FROM " + w.e.cfg.Table + " WHERE id IN (")
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatUint(w.e.rowID(id), 10))
	}
	sb.WriteByte(')')
	rs, err := db.QueryContext(ctx, sb.String())
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	defer rs.Close()
	out := make(map[uint64]row, len(ids))
	for rs.Next() {
		var id uint64
		var r row
		if err := rs.Scan(&id, &r.version, &r.payload); err != nil {
			return nil, err
		}
		out[id] = r
	}
	return out, rs.Err()
}

// admit is the database concurrency limit: it fails fast instead of
// queueing for the pool when limit queries are already running (limit 0 is
// off). Every admitted call must be paired with busy.Add(-1).
func (p *process) admit(limit int) bool {
	n := p.busy.Add(1)
	if limit > 0 && n > int64(limit) {
		p.busy.Add(-1)
		return false
	}
	return true
}

// delayClause is the QueryDelay condition appended to fill queries.
func (e *Engine) delayClause() string {
	if e.cfg.QueryDelay <= 0 && e.cfg.QueryContention <= 0 {
		return ""
	}
	d := strconv.FormatFloat(e.cfg.QueryDelay.Seconds(), 'f', 4, 64)
	if e.cfg.QueryContention > 0 {
		// the queries running on the server, this one and abandoned ones
		// included (MySQL and MariaDB both have the processlist table)
		d += " + " + strconv.FormatFloat(e.cfg.QueryContention.Seconds(), 'f', 4, 64) +
			" * (SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query')"
	}
	return " AND SLEEP(" + d + ") = 0"
}
