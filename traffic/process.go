package traffic

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/format"
	"github.com/firedrill-dev/firedrill/traffic/memcache"
	"github.com/firedrill-dev/firedrill/traffic/zipf"
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
	// failedLive says the failure came while the run was live: it stays
	// a failure when the run ends before the operation does
	failedLive bool
}

func (e *Engine) worker(ctx context.Context, idx int, work <-chan op) {
	w := &worker{e: e, idx: idx, rng: e.rand(uint64(idx) + 1)}
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
		w.kind, w.due, w.failClass, w.stale, w.failedLive = o.kind, o.intended, -1, false, false
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
		case opRequest:
			w.request(ctx, p, o.ids)
		}
		d := time.Since(o.intended)
		w.pastDeadline(ctx, d)
		switch o.kind {
		case opFetch, opMulti:
			e.stats.record(idx, o.intended, d, hFetch)
			e.stats.fetchesDone.Add(1)
			e.stats.fetchSumUs.Add(d.Microseconds())
		case opWrite, opTenantWrite:
			e.stats.record(idx, o.intended, d, hWrite)
		case opLookup:
			e.stats.record(idx, o.intended, d, hLookup)
		case opRequest:
			e.stats.record(idx, o.intended, d, hRequest)
		}
		e.stats.ledger.finish(idx, o.intended, o.kind, w.outcome(ctx), max(w.failClass, 0), late)
	}
}

// pastDeadline fails an operation answered d after it came due, past
// its caller's deadline: the caller stopped waiting, so it was not served.
func (w *worker) pastDeadline(ctx context.Context, d time.Duration) {
	if dl := w.e.cfg.Deadline; dl > 0 && d > dl && w.failClass < 0 && ctx.Err() == nil {
		w.e.stats.errorClass(w.kind, ClassDeadline)
		w.failed(ClassDeadline)
		w.failedLive = true
	}
}

// outcome is how the operation just worked ended. An operation the end of
// the run cut off is unfinished, unless it had already failed: a failure
// the system caused while the run was live counts whatever came after it.
func (w *worker) outcome(ctx context.Context) Outcome {
	switch {
	case ctx.Err() != nil && !w.failedLive:
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
	class := Classify(err)
	w.e.stats.errorClass(w.kind, class)
	w.e.stats.firstError(class, err)
}

// fail counts an error that lost the operation its answer: the operation
// ends failed (or shed) with the class of its first such error.
func (w *worker) fail(ctx context.Context, err error) {
	if err == nil {
		return
	}
	w.countErr(ctx, err)
	w.failed(Classify(err))
	if ctx.Err() == nil {
		w.failedLive = true
	}
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

// sharedError is the error of a fill another caller ran for this one
// (coalescing): it fails this operation too, but was counted once, by the
// caller that ran it.
type sharedError struct{ err error }

func (e sharedError) Error() string { return e.err.Error() }
func (e sharedError) Unwrap() error { return e.err }

// db runs one database call of the current operation through the
// protections' database hooks (a concurrency limit that sheds).
func (w *worker) db(p *process, call func() error) error {
	hooks := w.e.prot.Load().db
	next := call
	for i := len(hooks) - 1; i >= 0; i-- {
		h, inner := hooks[i], next
		next = func() error { return h.db(w, p, inner) }
	}
	return next()
}

// load reads one row through process p's pool, retried as the app's retry
// layer and the protections say.
func (w *worker) load(ctx context.Context, p *process, id uint64) (row, error) {
	return retrying(ctx, w, p, func() (row, error) { return w.loadOnce(ctx, p, id) })
}

// loadOnce is one attempt of load.
func (w *worker) loadOnce(ctx context.Context, p *process, id uint64) (row, error) {
	e := w.e
	var r row
	err := w.db(p, func() error {
		e.stats.dbEnter()
		defer e.stats.dbLeave()
		qctx, cancel := context.WithTimeout(ctx, e.cfg.DBTimeout)
		defer cancel()
		e.stats.add(p.idx, cDBQueries, 1) // counted when issued: demand on the database
		if e.hot[id] {
			e.stats.add(p.idx, cDBHotReads, 1)
		}
		t0 := time.Now()
		err := p.db.QueryRowContext(qctx, e.fillQuery, e.rowID(id)).Scan(&r.version, &r.payload)
		e.stats.record(w.idx, w.due, time.Since(t0), hDB)
		if err != nil {
			return fmt.Errorf("select row %d: %w", id, err)
		}
		return nil
	})
	return r, err
}

// encodeEntry builds the bytes and the memcached TTL of a fresh entry: the
// configured TTL, shaped by the protections' TTL hooks (jitter, a grace
// period for stale reads).
func (w *worker) encodeEntry(v format.Version, r row, fill time.Duration) ([]byte, int) {
	return w.encodeEntryTTL(v, r, fill, w.e.cfg.TTL)
}

// encodeEntryTTL is encodeEntry with ttl instead of the configured TTL.
func (w *worker) encodeEntryTTL(v format.Version, r row, fill, ttl time.Duration) ([]byte, int) {
	logical, stored := w.shapeTTL(ttl)
	return w.encodeEntryShaped(v, r, fill, logical, stored)
}

// shapeTTL runs ttl through the protections' TTL hooks: the logical TTL,
// after which readers take the entry for expired, and the stored one.
func (w *worker) shapeTTL(ttl time.Duration) (logical, stored time.Duration) {
	logical, stored = ttl, ttl
	for _, h := range w.e.prot.Load().ttl {
		logical, stored = h.ttl(w, logical, stored)
	}
	return logical, stored
}

// encodeEntryShaped encodes r with TTLs already shaped.
func (w *worker) encodeEntryShaped(v format.Version, r row, fill, logical, stored time.Duration) ([]byte, int) {
	b, _ := format.Encode(w.buf[:0], format.Entry{
		Version: v, ExpiresAt: time.Now().Add(logical).UnixMilli(),
		FillMillis: uint32(fill.Milliseconds()), RowVersion: r.version, Payload: r.payload,
	})
	w.buf = b
	return b, ttlSeconds(stored)
}

// fill refills key and ends the operation failed when the row was lost (a
// caller that shared another's failed fill fails without counting it
// again).
func (w *worker) fill(ctx context.Context, p *process, key string, id uint64, v format.Version) {
	err := w.fillThrough(ctx, p, key, id, v)
	var sh sharedError
	if errors.As(err, &sh) {
		w.failed(Classify(sh.err))
		if ctx.Err() == nil {
			w.failedLive = true
		}
		return
	}
	w.fail(ctx, err)
}

// fillThrough loads id and stores its entry through the protections' fill
// hooks (coalescing, a fill lock, leases). It returns the error that lost
// the row; a store that does not land is counted and costs only the entry.
func (w *worker) fillThrough(ctx context.Context, p *process, key string, id uint64, v format.Version) error {
	f := &fillCall{ctx: ctx, w: w, p: p, key: key, id: id, v: v, store: w.e.cache.Set}
	next := func() error {
		t0 := time.Now()
		r, err := w.load(ctx, p, id)
		if err != nil {
			return err
		}
		b, ttl := w.encodeEntry(v, r, time.Since(t0))
		w.countErr(ctx, f.store(ctx, key, b, ttl))
		return nil
	}
	hooks := w.e.prot.Load().fill
	for i := len(hooks) - 1; i >= 0; i-- {
		h, inner := hooks[i], next
		next = func() error { return h.fill(f, inner) }
	}
	return next()
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

// onHit is what a reader does with an entry it decoded: the first
// protection whose hit hook asks for something other than serving it as
// it is (stale-while-revalidate, XFetch) decides; else an expired entry is
// a miss.
func (w *worker) onHit(ent format.Entry, now time.Time) hitAction {
	expired := now.UnixMilli() >= ent.ExpiresAt
	for _, h := range w.e.prot.Load().hit {
		if a := h.onHit(w, ent, now, expired); a != serve && a != treatAsMiss {
			return a
		}
	}
	if expired {
		return treatAsMiss
	}
	return serve
}

// fetch is IdentityCache's fetch: get, and on a miss (or an entry this
// process cannot decode) read through and fill.
func (w *worker) fetch(ctx context.Context, p *process, nprocs int, id uint64) {
	e := w.e
	key := e.kb.Key(id)
	srv := e.cache.ServerIndex(key)
	reader := e.readerFor(p, nprocs)
	cur := reader.Version == format.Current
	e.stats.fetch(p.idx, srv, cur, fFetches)
	val, err := e.cache.GetInto(ctx, key, w.vbuf)
	switch {
	case err == nil && len(val) == 0:
		// a lease's placeholder: another reader is filling it
	case err == nil:
		w.vbuf = val // the decoded entry is used only within this fetch
		ent, derr := reader.Decode(val)
		switch {
		case derr == nil:
			switch w.onHit(ent, time.Now()) {
			case serve:
				e.stats.fetch(p.idx, srv, cur, fHits)
				return
			case serveStale:
				w.stale = true
				w.counter(p, MetricStaleServed, 1)
				e.stats.fetch(p.idx, srv, cur, fHits)
				w.refreshInBackground(p, key, id, reader.Version)
				return
			case refreshEarly:
				w.counter(p, MetricEarly, 1)
				e.stats.fetch(p.idx, srv, cur, fHits)
				w.fill(ctx, p, key, id, reader.Version)
				return
			}
		case errors.Is(derr, format.ErrForeign):
			// the incident: an entry in the other format is a miss
		default:
			w.countErr(ctx, derr)
		}
	case !errors.Is(err, memcache.ErrCacheMiss):
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
		bw := &worker{e: e, idx: w.idx, rng: e.rand(id), kind: w.kind, due: w.due, failClass: -1}
		bw.countErr(e.runCtx, bw.fillThrough(e.runCtx, p, key, id, v))
	}()
}

// fetchMulti is IdentityCache's fetch_multi: one multi-get, one multi-row
// SELECT for all misses, then a set per miss. It takes no lock. Stale and
// early-refresh decisions are per key, as a single fetch makes them.
func (w *worker) fetchMulti(ctx context.Context, p *process, nprocs int, ids []uint64) {
	e := w.e
	reader := e.readerFor(p, nprocs)
	cur := reader.Version == format.Current
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = e.kb.Key(id)
		e.stats.fetch(p.idx, e.cache.ServerIndex(keys[i]), cur, fFetches)
	}
	served := make(map[string]bool, len(keys)) // keys answered from the cache
	refill := map[string]bool{}                // served, but refilled now (XFetch)
	stale := map[string]bool{}                 // served expired, refreshed in the background
	now := time.Now()
	err := e.cache.GetMulti(ctx, keys, func(k string, v []byte) {
		if len(v) == 0 {
			return // a lease's placeholder: a miss
		}
		ent, derr := reader.Decode(v)
		switch {
		case derr == nil:
			switch w.onHit(ent, now) {
			case serve:
				served[k] = true
			case serveStale:
				served[k], stale[k] = true, true
				w.stale = true
				w.counter(p, MetricStaleServed, 1)
			case refreshEarly:
				served[k], refill[k] = true, true
				w.counter(p, MetricEarly, 1)
			}
		case !errors.Is(derr, format.ErrForeign):
			w.countErr(ctx, derr)
		}
	})
	w.countErr(ctx, err)
	var missIDs []uint64
	var missKeys []string
	for i, k := range keys {
		if served[k] {
			e.stats.fetch(p.idx, e.cache.ServerIndex(k), cur, fHits)
			if stale[k] {
				w.refreshInBackground(p, k, ids[i], reader.Version)
			}
			if !refill[k] {
				continue
			}
		} else {
			e.stats.fetch(p.idx, e.cache.ServerIndex(k), cur, fMisses)
		}
		missIDs = append(missIDs, ids[i])
		missKeys = append(missKeys, k)
	}
	if len(missIDs) == 0 {
		return
	}
	t0 := time.Now()
	rows, err := w.loadMany(ctx, p, missIDs)
	if err != nil {
		if len(refill) == len(missIDs) {
			w.countErr(ctx, err) // only early refreshes failed: every key was served
			return
		}
		w.fail(ctx, err)
		return
	}
	fillDur := time.Since(t0)
	for i, id := range missIDs {
		r, ok := rows[e.rowID(id)]
		if !ok {
			continue
		}
		b, ttl := w.encodeEntry(reader.Version, r, fillDur)
		w.countErr(ctx, e.cache.Set(ctx, missKeys[i], b, ttl))
	}
}

func (w *worker) loadMany(ctx context.Context, p *process, ids []uint64) (map[uint64]row, error) {
	return retrying(ctx, w, p, func() (map[uint64]row, error) { return w.loadManyOnce(ctx, p, ids) })
}

// loadManyOnce is one attempt of loadMany.
func (w *worker) loadManyOnce(ctx context.Context, p *process, ids []uint64) (map[uint64]row, error) {
	e := w.e
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
	sb.WriteString(e.delay)
	out := make(map[uint64]row, len(ids))
	err := w.db(p, func() error {
		e.stats.dbEnter()
		defer e.stats.dbLeave()
		qctx, cancel := context.WithTimeout(ctx, e.cfg.DBTimeout)
		defer cancel()
		e.stats.add(p.idx, cDBQueries, 1)
		for _, id := range ids {
			if e.hot[id] {
				e.stats.add(p.idx, cDBHotReads, 1)
			}
		}
		t0 := time.Now()
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
			return fmt.Errorf("select %d rows: %w", len(ids), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// lookup is a query by the indexed ref column that no cache fronts, as an
// app's find-by-external-id: cheap through idx_ref, a full scan of the
// table without it (the plan-regression fault). It goes through the
// process's pool and the database hooks like a fill, so a slow lookup takes
// connections from reads, which is how one bad plan hurts every query.
func (w *worker) lookup(ctx context.Context, p *process, id uint64) {
	e := w.e
	err := w.db(p, func() error {
		e.stats.dbEnter()
		defer e.stats.dbLeave()
		qctx, cancel := context.WithTimeout(ctx, e.cfg.DBTimeout)
		defer cancel()
		e.stats.add(p.idx, cLookups, 1)
		var got, version uint64
		if err := p.db.QueryRowContext(qctx, e.lookupQuery, RefFor(e.rowID(id))).Scan(&got, &version); err != nil {
			return fmt.Errorf("lookup ref of row %d: %w", id, err)
		}
		return nil
	})
	w.fail(ctx, err)
}

// request is a web request that calls the cache tier once per id, one call
// after another, as a page rendering fragments does: a get, and on a miss a
// set of a small record. A call that fails is counted and the request goes
// on, as Rails.cache rescues cache errors; so a request is served however
// its calls end, and slow as the sum of its calls. Requests touch no
// database. The end of the run cuts a request between two calls.
func (w *worker) request(ctx context.Context, p *process, ids []uint64) {
	e := w.e
	e.stats.add(p.idx, cRequests, 1)
	hooks := e.prot.Load().tier
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		next := func() error { return w.tierCall(ctx, p, id) }
		for i := len(hooks) - 1; i >= 0; i-- {
			h, inner := hooks[i], next
			next = func() error { return h.tierCall(w, p, inner) }
		}
		w.countErr(ctx, next())
	}
}

// tierKey is the tier's key of id: a key space of its own, so a tier that
// shares servers with the cache (a test's) never reads the cache's entries.
func (e *Engine) tierKey(id uint64) string { return "tier:" + e.kb.Key(id) }

// tierCall is one call of a request: one round trip, two when it missed.
func (w *worker) tierCall(ctx context.Context, p *process, id uint64) error {
	e := w.e
	e.stats.add(p.idx, cTierCalls, 1)
	key := e.tierKey(id)
	val, err := e.tier.GetInto(ctx, key, w.vbuf)
	if err == nil {
		w.vbuf = val
		return nil
	}
	if !errors.Is(err, memcache.ErrCacheMiss) {
		return fmt.Errorf("tier get %s: %w", key, err)
	}
	// the record the app keeps there: small, its id
	w.buf = strconv.AppendUint(w.buf[:0], id, 10)
	if err := e.tier.Set(ctx, key, w.buf, ttlSeconds(e.cfg.TTL)); err != nil {
		return fmt.Errorf("tier set %s: %w", key, err)
	}
	return nil
}

// tenantWrite updates one row of one tenant's table (the per-tenant
// schemas database.createTenants makes): the writes a DDL storm on those
// tables gets in the way of. n picks tenant n / TenantRows and row
// n % TenantRows + 1.
func (w *worker) tenantWrite(ctx context.Context, p *process, n uint64) {
	e := w.e
	rows := uint64(e.cfg.TenantRows)
	tenant, id := int(n/rows), n%rows+1
	tally := &e.tenantTally[tenant]
	err := w.exec(ctx, p, cTenantWrites, e.tenantUpdates[tenant], id, func() { tally.sent.Add(1) }, func(err error) error {
		return fmt.Errorf("update tenant %d row %d: %w", tenant, id, err)
	})
	if err == nil {
		tally.acked.Add(1)
	}
	w.fail(ctx, err)
}

// write updates a row and invalidates its entry, as IdentityCache's
// after-commit expiry does.
func (w *worker) write(ctx context.Context, p *process, id uint64) {
	e := w.e
	err := w.exec(ctx, p, -1, "UPDATE "+e.cfg.Table+" SET version = version + 1 WHERE id = ?", e.rowID(id), nil, func(err error) error {
		return fmt.Errorf("update row %d: %w", id, err)
	})
	if err != nil {
		w.fail(ctx, err)
		return
	}
	w.countErr(ctx, e.cache.Delete(ctx, e.kb.Key(id)))
}

// exec runs one write statement through the database hooks; counter, when
// not negative, is also counted (tenant writes), and sent, when not nil,
// is called as the statement leaves for the database.
func (w *worker) exec(ctx context.Context, p *process, counter int, q string, arg uint64, sent func(), wrap func(error) error) error {
	e := w.e
	return w.db(p, func() error {
		e.stats.dbEnter()
		qctx, cancel := context.WithTimeout(ctx, e.cfg.DBTimeout)
		t0 := time.Now()
		if sent != nil {
			sent()
		}
		_, err := p.db.ExecContext(qctx, q, arg)
		cancel()
		e.stats.record(w.idx, w.due, time.Since(t0), hDB)
		e.stats.dbLeave()
		e.stats.add(p.idx, cDBQueries, 1)
		if counter >= 0 {
			e.stats.add(p.idx, counter, 1)
		}
		if err != nil {
			return wrap(err)
		}
		return nil
	})
}

// warm fills the n most popular entries before a replay; reads is the
// replay's reads of the cache per second (0 before no replay: Prefill),
// which a spread warm needs to leave out the entries that would be
// waiting for their next read (see steady).
func (e *Engine) warm(ctx context.Context, n int, reads float64) error {
	var st *steady
	if e.cfg.WarmSpread {
		st = &steady{reads: reads}
	}
	return e.fillTop(ctx, n, e.cfg.WarmTTL, e.cache, e.dsn, st, e.cfg.WarmAbsent)
}

// coldAbsent is the share of the keys outside the hot set that a steady
// state of writes keeps absent, given the share absent (w/(r+w)) when
// reads and writes are drawn from one Zipf. With writes kept off the hot
// set they fall on the rest only, whose odds of being absent, w/r, grow by
// 1/(1 - the hot set's share of reads): at 3% writes and the 500 hottest
// of 20,000 keys (theta 0.99), 8.3% of the cold keys, not 3% (a warm of
// 3% let the steady refill rate climb from 13 to 26 SELECTs/s over the
// first 100 s of cache-format-flip, 2026-12-04).
func (e *Engine) coldAbsent(absent float64) float64 {
	if !e.cfg.HotSetReadOnly || e.cfg.HotSet <= 0 {
		return absent
	}
	hot := zipf.TopShare(uint64(e.cfg.HotSet), e.cfg.Keys, e.cfg.Theta)
	odds := absent / (1 - absent) / (1 - hot)
	return odds / (1 + odds)
}

// fillTop stores the n most popular entries through mc, read over dsn,
// each with ttl as the protections shape it, all at one instant; with st,
// as a cache in its steady state holds them instead (see steady).
// A share absent of them is left out at random (the hot set too, unless
// writes stay off it).
func (e *Engine) fillTop(ctx context.Context, n int, ttl time.Duration, mc *memcache.Client, dsn string, st *steady, absent float64) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(4)
	ids := HotSetIDs(n, e.cfg.Keys)
	w := &worker{e: e, rng: rand.New(rand.NewPCG(e.cfg.Seed, 0x7761726d))}
	v := e.cfg.Format
	if st != nil {
		st.init(w, ttl, ids)
	}
	if absent > 0 {
		// Drawn once per id (ranks map to ids by a hash, and an id
		// several ranks share, most of a Zipf's reads, drawn once per
		// rank would be absent far less often), from a stream of its own
		// so the steady draws stay those of a warm without absent entries.
		rng := rand.New(rand.NewPCG(e.cfg.Seed, 0x61627374))
		absent = e.coldAbsent(absent)
		kept := ids[:0:0]
		seen := make(map[uint64]bool, len(ids))
		for i, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			if rng.Float64() >= absent || (e.cfg.HotSetReadOnly && i < e.cfg.HotSet) {
				kept = append(kept, id)
			}
		}
		ids = kept
	}
	const batch = 500
	for i := 0; i < len(ids); i += batch {
		chunk := ids[i:min(i+batch, len(ids))]
		rows, err := w.loadManyDB(ctx, db, chunk)
		if err != nil {
			return err
		}
		items := make([]setItem, 0, len(chunk))
		for _, id := range chunk {
			r := rows[e.rowID(id)]
			logical, storedTTL, ok := st.draw(w, ttl, id)
			if !ok {
				continue // expired, waiting for its next read
			}
			b, stored := w.encodeEntryShaped(v, r, time.Millisecond+e.cfg.QueryDelay, logical, storedTTL)
			items = append(items, setItem{key: e.kb.Key(id), value: bytes.Clone(b), ttl: stored})
		}
		if err := setAll(ctx, mc, items); err != nil {
			return err
		}
	}
	return nil
}

// setItem is one entry setAll stores.
type setItem struct {
	key   string
	value []byte
	ttl   int
}

// setAll stores items over a few connections at once. A refilled hot set
// must expire together, as the incident's did: written one after another,
// its first keys started their TTL earlier than the last, on top of the
// second over which memcached's whole-second clock already spreads it.
func setAll(ctx context.Context, mc *memcache.Client, items []setItem) error {
	const workers = 8
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	ch := make(chan setItem)
	for range min(workers, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				if err := mc.Set(ctx, it.key, it.value, it.ttl); err != nil {
					once.Do(func() { first = fmt.Errorf("set %s: %w", it.key, err) })
				}
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case ch <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return fmt.Errorf("set: %w", ctx.Err())
	}
	return first
}

// steady draws the entries of a cache in its steady state, where every
// entry is refilled on the first read after it expires, with a TTL the
// protections shape (ttlJitter draws it in [ttl(1-f), ttl]). Each entry is
// a renewal process: a life L, then a wait for the next read, exponential
// with mean 1/lambda at the key's reads per second lambda. At a random
// instant an entry is therefore absent (expired, not yet read) with
// probability (1/lambda) / (E[L] + 1/lambda), and otherwise at a uniform
// point of a life drawn length-biased: a long life covers more instants.
//
// Filling every entry, each with a life uniform in the TTL (what this did
// before), starts the cache off its steady state at low rates: few misses
// at first, since a rarely read key expires and waits unnoticed, and more
// once the TTLs have turned over (12% more at 100 reads/s over 200 Zipf
// keys). A calm phase then misjudged what "recovered" means. A TTL no
// protection shapes keeps the draw it had (uniform whole seconds in
// [1 s, ttl], every entry present).
type steady struct {
	reads float64 // the replay's reads of the cache per second (0: unknown)

	meanL  float64 // E[L] in seconds; 0 when no protection shapes TTLs
	lambda map[uint64]float64
}

func (st *steady) init(w *worker, ttl time.Duration, ids []uint64) {
	if len(w.e.prot.Load().ttl) == 0 {
		return
	}
	const draws = 4096
	sum := 0.0
	for range draws {
		l, _ := w.shapeTTL(ttl)
		sum += l.Seconds()
	}
	st.meanL = sum / draws
	if st.reads <= 0 || w.e.zipf == nil {
		return
	}
	// a key's reads: the ranks that scramble onto its id
	st.lambda = make(map[uint64]float64, len(ids))
	for rank, id := range ids {
		st.lambda[id] += st.reads * w.e.zipf.Prob(uint64(rank))
	}
}

// draw returns an entry's logical and stored TTLs, or false when the
// entry is absent. A nil steady fills every entry with ttl as the
// protections shape it.
func (st *steady) draw(w *worker, ttl time.Duration, id uint64) (time.Duration, time.Duration, bool) {
	if st == nil {
		logical, stored := w.shapeTTL(ttl)
		return logical, stored, true
	}
	if st.meanL == 0 {
		// one TTL for every refill: the residual life is uniform in it
		// (whole seconds, as memcached keeps them), every entry present
		t := ttl
		if secs := int64(ttl / time.Second); secs > 1 {
			t = time.Duration(1+w.rng.Int64N(secs)) * time.Second
		}
		return t, t, true
	}
	if lam := st.lambda[id]; lam > 0 {
		wait := 1 / lam
		if w.rng.Float64() < wait/(st.meanL+wait) {
			return 0, 0, false
		}
	}
	// accept a life with probability L/ttl: length-biased (the hooks only
	// shorten the logical TTL, so at least 1-f of the draws are kept; the
	// bound only guards a hook that shortens to nothing)
	logical, stored := w.shapeTTL(ttl)
	for try := 0; try < 1000 && w.rng.Float64()*float64(ttl) > float64(logical); try++ {
		logical, stored = w.shapeTTL(ttl)
	}
	left := time.Duration(w.rng.Float64() * float64(logical))
	return left, stored - (logical - left), true
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

// delayClause is the FillWork and QueryDelay conditions appended to fill
// queries. The work is uncorrelated subqueries: the server reads their
// rows once per statement, whatever the rows the fill itself reads. Work
// past the table's rows is split into passes over it, one subquery each
// (their aliases differ, so each is a statement item of its own).
func (e *Engine) delayClause() string {
	var b strings.Builder
	if w := e.cfg.FillWork; w > 0 {
		passes := fillPasses(w, e.cfg.Rows)
		per := strconv.Itoa((w + passes - 1) / passes)
		for i := range passes {
			a := "w"
			if i > 0 {
				a += strconv.Itoa(i)
			}
			b.WriteString(" AND (SELECT COALESCE(SUM(" + a + ".version), 0) FROM " + e.cfg.Table + " " + a +
				" WHERE " + a + ".id <= " + per + ") >= 0")
		}
	}
	if e.cfg.QueryDelay > 0 {
		b.WriteString(" AND SLEEP(" + strconv.FormatFloat(e.cfg.QueryDelay.Seconds(), 'f', 4, 64) + ") = 0")
	}
	return b.String()
}

// fillPasses is how many passes over a table of rows records a fill's
// work of w rows takes.
func fillPasses(w int, rows uint64) int {
	if rows == 0 || uint64(w) <= rows {
		return 1
	}
	return int((uint64(w) + rows - 1) / rows)
}
