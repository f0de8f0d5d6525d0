package harness

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/firedrill-dev/firedrill/environments"
)

// ServersFile is the name of the sampler's file in a run folder.
const ServersFile = "servers.ndjson"

// Lines of ServersFile, by their "type".
const (
	// LineSource declares a source before its first sample, so a source
	// that never answered still counts as missing every second.
	LineSource = "source"
	// LineSample is one reading of a source.
	LineSample = "sample"
	// LineError is a reading that failed.
	LineError = "error"
)

// ServerLine is one line of ServersFile: a source's declaration, one
// reading of it, or a reading that failed. Counters are the servers' own
// running totals, as read (the collector takes their differences); gauges
// are values at T.
type ServerLine struct {
	Type     string             `json:"type"`
	Source   string             `json:"source"`
	T        time.Time          `json:"t"`
	Tags     map[string]string  `json:"tags,omitempty"`
	Counters map[string]float64 `json:"counters,omitempty"`
	Gauges   map[string]float64 `json:"gauges,omitempty"`
	// Note says what a source reads (on its declaration); Err why a
	// reading failed.
	Note string `json:"note,omitempty"`
	Err  string `json:"err,omitempty"`
	// UserCounts is the database source's way of counting the traffic
	// user's statements (one of the DBUserCounts... values).
	UserCounts string `json:"user_counts,omitempty"`
	// Interval is the sampling interval in seconds (on declarations).
	Interval float64 `json:"interval,omitempty"`
	// TookMs is how long the reading (or the failed attempt) took, round
	// trip: the evidence when a source misses seconds under load.
	TookMs float64 `json:"took_ms,omitempty"`
	// Due is the tick the reading served: when it was meant to start. A
	// reading the server answered late still serves its tick; a tick
	// that passed while an earlier reading ran is never served, and that
	// is what the coverage check counts.
	Due time.Time `json:"due,omitzero"`
}

// How the database source counts the traffic user's statements.
const (
	// DBUserCountsUserStatistics reads MariaDB's per-user statistics
	// (userstat=1, SHOW USER_STATISTICS).
	DBUserCountsUserStatistics = "user_statistics"
	// DBUserCountsPerformanceSchema reads MySQL's
	// performance_schema.events_statements_summary_by_user_by_event_name.
	DBUserCountsPerformanceSchema = "performance_schema"
	// DBUserCountsNone: neither is available; only the global counters,
	// which include the harness's own statements, were sampled.
	DBUserCountsNone = "none"
)

// Source names: the database, each memcached server by its name
// (memcached-0, ...), each container as container:<service>.
const (
	sourceDB        = "db"
	containerSource = "container:"
	appSource       = "app:"
)

// serverMetric is one of the servers' own counters or gauges.
type serverMetric struct {
	name    string
	counter bool   // a running total; else a gauge
	unit    string // of a gauge's value, or of a counter's rate
}

// serverMetrics are every counter and gauge the sampler records, by name:
// the collector reads their kinds here, and checks can name each (see the
// README's table of check metrics).
var serverMetrics = func() map[string]serverMetric {
	m := map[string]serverMetric{}
	add := func(counter bool, unit string, names ...string) {
		for _, n := range names {
			m[n] = serverMetric{name: n, counter: counter, unit: unit}
		}
	}
	add(true, "/s", mDBQuestions, mDBComSelect, mDBComUpdate, mDBMaxConnErrors, mDBAbortedConnects,
		mDBUserSelect, mDBUserUpdate, mDBUserOther, mDBUserDenied, mDBUserRowsRead, mDBUserTimeouts,
		mMCCmdGet, mMCCmdSet, mMCGetHits, mMCGetMisses, mMCGetExpired, mMCEvictions)
	add(true, "s/s", mDBUserBusy, mDBUserCPU)
	add(true, "cores", mCPU)
	add(false, "threads", mDBThreadsConnected, mDBThreadsRunning)
	add(false, "connections", mDBUserConnections, mMCCurrConnections)
	add(false, "MB", mMem)
	// a second cache tier's servers (@tier): memcached's metrics under
	// server_tier_, so the cache's own fleet sums leave them out
	for n, sm := range m {
		if t, ok := tierMetric(n); ok {
			m[t] = serverMetric{name: t, counter: sm.counter, unit: sm.unit}
		}
	}
	return m
}()

// tierMetric is a memcached metric's name for a tier server.
func tierMetric(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "server_mc_")
	if !ok {
		return "", false
	}
	return "server_tier_" + rest, true
}

// Server metric names.
const (
	mDBQuestions        = "server_db_questions"         // Questions: every statement a client sent, the harness's included
	mDBComSelect        = "server_db_com_select"        // Com_select
	mDBComUpdate        = "server_db_com_update"        // Com_update
	mDBThreadsConnected = "server_db_threads_connected" // Threads_connected
	mDBThreadsRunning   = "server_db_threads_running"   // Threads_running
	mDBMaxConnErrors    = "server_db_max_conn_errors"   // Connection_errors_max_connections: refused at max_connections
	mDBAbortedConnects  = "server_db_aborted_connects"  // Aborted_connects
	mDBUserSelect       = "server_db_user_select"       // the traffic user's SELECTs
	mDBUserUpdate       = "server_db_user_update"       // the traffic user's UPDATEs
	mDBUserOther        = "server_db_user_other"        // the traffic user's other statements
	mDBUserConnections  = "server_db_user_connections"  // the traffic user's open connections
	mDBUserDenied       = "server_db_user_denied"       // the traffic user's denied connections
	mDBUserBusy         = "server_db_user_busy_s"       // seconds the server was busy on the traffic user's statements
	mDBUserCPU          = "server_db_user_cpu_s"        // CPU seconds of the traffic user's statements
	mDBUserRowsRead     = "server_db_user_rows_read"    // rows the traffic user's statements read
	mDBUserTimeouts     = "server_db_user_timeouts"     // the traffic user's statements stopped by max_statement_time
	mMCCmdGet           = "server_mc_cmd_get"           // keys asked for (each key of a multi-get)
	mMCCmdSet           = "server_mc_cmd_set"           // stores
	mMCGetHits          = "server_mc_get_hits"          // keys found
	mMCGetMisses        = "server_mc_get_misses"        // keys not found
	mMCGetExpired       = "server_mc_get_expired"       // keys found expired (also misses)
	mMCEvictions        = "server_mc_evictions"         // items evicted for room
	mMCCurrConnections  = "server_mc_curr_connections"  // open connections (the sampler's own one included)
	mCPU                = "server_cpu"                  // a container's CPU time in seconds; its rate is cores used
	mMem                = "server_mem_mb"               // a container's memory in MiB (usage less inactive file cache, as docker stats shows)
)

// dbStatus maps SHOW GLOBAL STATUS variables to metrics.
var dbStatus = map[string]string{
	"Questions": mDBQuestions, "Com_select": mDBComSelect, "Com_update": mDBComUpdate,
	"Threads_connected": mDBThreadsConnected, "Threads_running": mDBThreadsRunning,
	"Connection_errors_max_connections": mDBMaxConnErrors, "Aborted_connects": mDBAbortedConnects,
}

// userStatistics maps MariaDB's USER_STATISTICS columns to metrics.
var userStatistics = map[string]string{
	"select_commands": mDBUserSelect, "update_commands": mDBUserUpdate, "other_commands": mDBUserOther,
	"concurrent_connections": mDBUserConnections, "denied_connections": mDBUserDenied,
	"busy_time": mDBUserBusy, "cpu_time": mDBUserCPU, "rows_read": mDBUserRowsRead,
	"max_statement_time_exceeded": mDBUserTimeouts,
}

// memcachedStats maps memcached's stats to metrics.
var memcachedStats = map[string]string{
	"cmd_get": mMCCmdGet, "cmd_set": mMCCmdSet, "get_hits": mMCGetHits, "get_misses": mMCGetMisses,
	"get_expired": mMCGetExpired, "evictions": mMCEvictions, "curr_connections": mMCCurrConnections,
}

// SamplerOption configures StartSampler.
type SamplerOption func(*samplerConfig)

type samplerConfig struct {
	interval time.Duration
	timeout  time.Duration
	progress io.Writer
	apps     []SampledApp
}

// SampledApp is a release of the service under test the sampler reads:
// its container's CPU and memory always, its Prometheus metrics when it
// serves them.
type SampledApp struct {
	Name       string // release: app, base or head
	Service    string // its container's service label (environments.AppService)
	MetricsURL string // "" when it serves no metrics
}

// WithApps adds the service under test's releases to the sources.
func WithApps(apps ...SampledApp) SamplerOption {
	return func(c *samplerConfig) { c.apps = append(c.apps, apps...) }
}

// WithSampleInterval sets how often every source is read: the database,
// memcached, the service's metrics and each container's stats. Default 1 s.
func WithSampleInterval(d time.Duration) SamplerOption {
	return func(c *samplerConfig) { c.interval = d }
}

// WithSampleTimeout bounds one reading of one source. Default five
// intervals: a database at its CPU quota answers the sampler's reading up
// to 1.3 s late (plan-regression's scans, at nice -15), and a reading cut
// off drops its connection, whose successor runs un-raised until its
// renice lands, so a cut-off costs more seconds than the late answer.
func WithSampleTimeout(d time.Duration) SamplerOption {
	return func(c *samplerConfig) { c.timeout = d }
}

// WithSamplerProgress sends the sampler's progress lines to w. Default:
// none.
func WithSamplerProgress(w io.Writer) SamplerOption {
	return func(c *samplerConfig) { c.progress = w }
}

// Sampler reads the servers' own counters while a drill runs: the
// database's global status and its traffic user's statistics, each
// memcached server's stats, and each container's CPU and memory. Each
// source is read on its own goroutine, so a stalled one delays no other,
// and every reading is appended to the file as it is taken, with its own
// time, so a run that is killed keeps what was read.
type Sampler struct {
	cfg    samplerConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup
	out    *lineWriter
	db     *sql.DB
	dbc    *priorityConn
	mcs    []*memcachedConn
	docker *client.Client
	once   sync.Once
	err    error
}

// StartSampler starts sampling env's servers into path until Stop (or
// ctx's end). The database and memcached are read past Toxiproxy (the
// admin port as root, the direct addresses), so faults and a database at
// max_connections do not stop the sampling. A source that cannot be
// reached is retried every interval and its failures are recorded: the
// coverage precondition judges them. Only a file that cannot be written
// is an error.
func StartSampler(ctx context.Context, env *environments.Env, path string, opts ...SamplerOption) (*Sampler, error) {
	cfg := samplerConfig{interval: time.Second, progress: io.Discard}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.interval <= 0 {
		return nil, fmt.Errorf("sampler: interval %s must be positive", cfg.interval)
	}
	if cfg.timeout <= 0 {
		cfg.timeout = 5 * cfg.interval
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("sampler: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sampler{cfg: cfg, cancel: cancel, out: &lineWriter{f: f}}

	db, mode, note := s.openDB(ctx, env)
	s.db = db
	if db != nil {
		s.dbc = &priorityConn{db: db, flavor: env.DB.Flavor, setNice: env.SetDBThreadNice, want: make(chan int64, 1)}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.dbc.raiseLoop(ctx, 10*time.Second)
		}()
		if err := s.dbc.get(ctx); err != nil {
			note += "; its thread keeps the default priority (" + err.Error() + "), so readings can lag under a saturated database"
		} else if s.dbc.niceErr != nil {
			note += "; its thread keeps the default priority (" + s.dbc.niceErr.Error() + "), so readings can lag under a saturated database"
		} else {
			note += fmt.Sprintf("; the sampler's own thread runs at nice %d within the database's CPU quota, so a saturated database is still read every second", samplerNice)
		}
	}
	s.declare(ServerLine{Source: sourceDB, Note: note, UserCounts: mode})
	for _, m := range env.Memcached {
		s.declare(ServerLine{Source: m.Name, Tags: map[string]string{"server": m.Name}, Note: "memcached stats at " + m.DirectAddr})
	}
	for _, m := range env.Tier {
		s.declare(ServerLine{Source: m.Name, Tags: map[string]string{"tier": m.Name}, Note: "memcached stats of the tier server at " + m.DirectAddr + " (server_tier_*)"})
	}
	services := []string{"mysql"}
	for _, m := range append(slices.Clone(env.Memcached), env.Tier...) {
		services = append(services, m.Name)
	}
	services = append(services, "toxiproxy")
	for _, a := range cfg.apps {
		services = append(services, a.Service)
	}
	docker, derr := client.New(client.FromEnv)
	for _, svc := range services {
		s.declare(ServerLine{Source: containerSource + svc, Tags: map[string]string{"container": svc},
			Note: "CPU and memory of the " + svc + " container: its cgroup files where the harness runs on the Docker host, else docker stats"})
	}
	if derr != nil {
		// Declared above and never sampled: the coverage check names them.
		for _, svc := range services {
			s.record(ServerLine{Type: LineError, Source: containerSource + svc, T: time.Now(), Err: "docker client: " + derr.Error()})
		}
		docker = nil
	}
	s.docker = docker

	s.loop(ctx, sourceDB, nil, func(ctx context.Context) (ServerLine, error) { return s.sampleDB(ctx, mode) })
	for _, m := range env.Memcached {
		mc := &memcachedConn{addr: m.DirectAddr}
		s.mcs = append(s.mcs, mc)
		s.loop(ctx, m.Name, map[string]string{"server": m.Name}, mc.sample)
	}
	for _, m := range env.Tier {
		mc := &memcachedConn{addr: m.DirectAddr, tier: true}
		s.mcs = append(s.mcs, mc)
		s.loop(ctx, m.Name, map[string]string{"tier": m.Name}, mc.sample)
	}
	for _, a := range cfg.apps {
		if a.MetricsURL == "" {
			continue
		}
		pm := &promSource{url: a.MetricsURL, client: &http.Client{}}
		src := appSource + a.Name
		s.declare(ServerLine{Source: src, Tags: map[string]string{"app": a.Name}, Note: "Prometheus metrics of the service at " + a.MetricsURL})
		s.loop(ctx, src, map[string]string{"app": a.Name}, pm.sample)
	}
	if docker != nil {
		for _, svc := range services {
			cs := &containerStats{s: s, runID: env.RunID, service: svc}
			s.loop(ctx, containerSource+svc, map[string]string{"container": svc}, cs.sample)
		}
	}
	fmt.Fprintf(cfg.progress, "servers: sampling the database (%s), %d memcached and %d containers every %s into %s\n",
		mode, len(env.Memcached), len(services), cfg.interval, path)
	return s, nil
}

// Stop ends the sampling, waits for every source's goroutine and closes
// the file. It is safe to call more
// than once and on a nil Sampler.
func (s *Sampler) Stop() error {
	if s == nil {
		return nil
	}
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		for _, mc := range s.mcs {
			mc.close()
		}
		var errs []error
		if s.dbc != nil {
			s.dbc.drop()
		}
		if s.db != nil {
			errs = append(errs, s.db.Close())
		}
		if s.docker != nil {
			errs = append(errs, s.docker.Close())
		}
		errs = append(errs, s.out.close())
		if err := errors.Join(errs...); err != nil {
			s.err = fmt.Errorf("sampler: %w", err)
		}
	})
	return s.err
}

func (s *Sampler) declare(l ServerLine) {
	l.Type, l.T, l.Interval = LineSource, time.Now(), s.cfg.interval.Seconds()
	s.record(l)
}

func (s *Sampler) record(l ServerLine) { s.out.write(l) }

// loop reads one source every interval, from now, until ctx ends. A
// reading that ends after the next tick has passed serves that tick at
// once, late; when more than one has passed, it serves the latest and the
// others go unserved: a gap the coverage check sees, never a burst of
// late readings.
func (s *Sampler) loop(ctx context.Context, source string, tags map[string]string, read func(context.Context) (ServerLine, error)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		iv := s.cfg.interval
		start := time.Now()
		for k := 0; ; {
			due := start.Add(time.Duration(k) * iv)
			rctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
			t0 := time.Now()
			l, err := read(rctx)
			t1 := time.Now()
			cancel()
			if ctx.Err() != nil {
				return
			}
			// The server read its counters somewhere in the round trip:
			// its middle is the best estimate of when.
			at := t0.Add(t1.Sub(t0) / 2)
			took := float64(t1.Sub(t0).Microseconds()) / 1000
			if err != nil {
				s.record(ServerLine{Type: LineError, Source: source, T: at, Err: err.Error(), TookMs: took, Due: due})
			} else {
				l.TookMs, l.Due = took, due
				// a source that knows when it read (Docker's stats do)
				// keeps its own time
				if l.T.IsZero() {
					l.T = at
				}
				l.Type, l.Source, l.Tags = LineSample, source, tags
				s.record(l)
			}
			k = max(k+1, int(time.Since(start)/iv))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(time.Duration(k) * iv))):
			}
		}
	}()
}

// openDB connects to the database's admin port and decides how the
// traffic user's statements are counted: MariaDB's user statistics
// (switched on here: they cost little and are off by default), else
// MySQL's performance schema, else not at all.
func (s *Sampler) openDB(ctx context.Context, env *environments.Env) (*sql.DB, string, string) {
	cfg, err := mysql.ParseDSN(env.DB.AdminDSN)
	if err != nil {
		return nil, DBUserCountsNone, "admin DSN: " + err.Error()
	}
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = s.cfg.timeout, s.cfg.timeout, s.cfg.timeout
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, DBUserCountsNone, "admin DSN: " + err.Error()
	}
	// One connection: the admin port has few, and fault injectors need
	// them too.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	base := "SHOW GLOBAL STATUS over the admin port as " + environments.DBAdminUser
	if env.DB.Flavor != "mysql" {
		_, err1 := db.ExecContext(dctx, "SET GLOBAL userstat = 1")
		if err1 == nil {
			_, err1 = userStatisticsRow(dctx, db)
		}
		if err1 == nil {
			return db, DBUserCountsUserStatistics, base + "; the traffic user's (" + environments.DBUser +
				") statements from SHOW USER_STATISTICS, which counts no other user's"
		}
		base += fmt.Sprintf("; no user statistics (%v)", err1)
	}
	var on int
	err2 := db.QueryRowContext(dctx, "SELECT @@performance_schema").Scan(&on)
	if err2 == nil && on == 1 {
		_, err2 = perfSchemaRow(dctx, db)
	} else if err2 == nil {
		err2 = errors.New("performance_schema is off")
	}
	if err2 == nil {
		return db, DBUserCountsPerformanceSchema, base + "; the traffic user's (" + environments.DBUser +
			") statements from performance_schema.events_statements_summary_by_user_by_event_name (the sampler's own two SELECTs a reading count in Com_select)"
	}
	return db, DBUserCountsNone, base + fmt.Sprintf("; global counters only, which include the harness's own statements (no performance schema: %v)", err2)
}

// sampleDB reads the global status and the traffic user's counts on the
// sampler's own raised connection.
func (s *Sampler) sampleDB(ctx context.Context, mode string) (ServerLine, error) {
	if s.dbc == nil {
		return ServerLine{}, errors.New("no admin connection")
	}
	if err := s.dbc.get(ctx); err != nil {
		return ServerLine{}, err
	}
	l, err := readDB(ctx, s.dbc.conn, mode)
	if err != nil {
		// A reading cut off by its timeout leaves the connection in an
		// unknown state: the next reading takes a new one.
		s.dbc.drop()
	}
	return l, err
}

func readDB(ctx context.Context, q queryer, mode string) (ServerLine, error) {
	names := make([]string, 0, len(dbStatus))
	for n := range dbStatus {
		names = append(names, "'"+n+"'")
	}
	// SHOW, not a SELECT from information_schema: the sampler's own
	// readings then never count in Com_select.
	rows, err := q.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ("+strings.Join(names, ",")+")")
	if err != nil {
		return ServerLine{}, fmt.Errorf("global status: %w", err)
	}
	l := ServerLine{Counters: map[string]float64{}, Gauges: map[string]float64{}}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			rows.Close()
			return ServerLine{}, fmt.Errorf("global status: %w", err)
		}
		v, err := strconv.ParseFloat(value, 64)
		if m, ok := dbStatus[name]; ok && err == nil {
			l.put(m, v)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return ServerLine{}, fmt.Errorf("global status: %w", err)
	}
	var user map[string]float64
	switch mode {
	case DBUserCountsUserStatistics:
		user, err = userStatisticsRow(ctx, q)
	case DBUserCountsPerformanceSchema:
		user, err = perfSchemaRow(ctx, q)
	}
	if err != nil {
		return ServerLine{}, fmt.Errorf("traffic user's statistics: %w", err)
	}
	for m, v := range user {
		l.put(m, v)
	}
	return l, nil
}

// queryer is what the readings need of a *sql.DB or a *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ queryer = (*sql.DB)(nil)
	_ queryer = (*sql.Conn)(nil)
)

// samplerNice is the nice value of the sampler's database thread. A
// database at its CPU quota shares it among its threads by weight: a
// reading at nice 0 waited behind a hundred fills for up to 4.6 s (hot-key
// expiry, 1 core), at -15 (weight 29154 against 1024) for at most 0.2 s.
const samplerNice = -15

// priorityConn is the sampler's one database connection, pinned so that
// its server thread can be raised: a connection from a pool could be
// served by any thread. A thread it gives up goes back to the server's
// thread cache and may serve traffic next, so its priority is put back
// when a new one is raised.
//
// Only the first thread is raised before a reading. Later ones, after a
// reading was cut off, are raised by a goroutine of their own: a renice is
// a Docker exec, and a reading must not wait on the Docker daemon (a 14 s
// stall of the daemon once cost a nightly hot-key-expiry 14 s of database
// readings, each tick dialling again and waiting on an exec that timed
// out).
type priorityConn struct {
	db      *sql.DB
	flavor  string
	setNice func(ctx context.Context, tid int64, nice int) error

	conn *sql.Conn

	mu      sync.Mutex // held across a renice: serialises them
	raised  int64      // the thread at samplerNice now (0: none)
	niceErr error      // why the last thread could not be raised

	started bool
	want    chan int64 // the next thread to raise, latest first
}

// get pins a connection if none is. The first one's thread is raised
// before get returns; a later one's by raiseLoop. A thread that cannot be
// raised is not an error: the readings go on at the default priority, and
// niceErr says why.
func (p *priorityConn) get(ctx context.Context) error {
	if p.conn != nil {
		return nil
	}
	c, err := p.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("admin connection: %w", err)
	}
	p.conn = c
	q := "SELECT TID FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
	if p.flavor == "mysql" {
		q = "SELECT THREAD_OS_ID FROM performance_schema.threads WHERE PROCESSLIST_ID = CONNECTION_ID()"
	}
	var tid int64
	if err := c.QueryRowContext(ctx, q).Scan(&tid); err != nil {
		p.mu.Lock()
		p.niceErr = fmt.Errorf("thread id: %w", err)
		p.mu.Unlock()
		return nil
	}
	if !p.started {
		p.started = true
		p.raise(ctx, tid)
		return nil
	}
	select { // replace a raise still pending: its connection is gone
	case <-p.want:
	default:
	}
	p.want <- tid
	return nil
}

// raise puts the raised thread back to 0 and raises tid.
func (p *priorityConn) raise(ctx context.Context, tid int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.raised != 0 && p.raised != tid {
		if err := p.setNice(ctx, p.raised, 0); err != nil {
			p.niceErr = err
			return // tried again with the next thread
		}
		p.raised = 0
	}
	if err := p.setNice(ctx, tid, samplerNice); err != nil {
		p.niceErr = err
		return
	}
	p.raised, p.niceErr = tid, nil
}

// raiseLoop raises the threads get asks for until ctx ends, each renice
// bounded by timeout.
func (p *priorityConn) raiseLoop(ctx context.Context, timeout time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case tid := <-p.want:
			rctx, cancel := context.WithTimeout(ctx, timeout)
			p.raise(rctx, tid)
			cancel()
		}
	}
}

// drop gives up the pinned connection; its thread's priority is put back
// when the next one is raised (not at Stop, when the database may already
// be going).
func (p *priorityConn) drop() {
	if p.conn == nil {
		return
	}
	_ = p.conn.Raw(func(any) error { return driver.ErrBadConn })
	p.conn.Close()
	p.conn = nil
}

// put files v under its metric's kind.
func (l *ServerLine) put(metric string, v float64) {
	if serverMetrics[metric].counter {
		l.Counters[metric] = v
	} else {
		l.Gauges[metric] = v
	}
}

// userStatisticsRow reads the traffic user's row of MariaDB's user
// statistics. A user that has not connected since they were switched on
// has no row: every count is 0.
func userStatisticsRow(ctx context.Context, db queryer) (map[string]float64, error) {
	rows, err := db.QueryContext(ctx, "SHOW USER_STATISTICS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, m := range userStatistics {
		out[m] = 0
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		user := ""
		for i, c := range cols {
			if strings.EqualFold(c, "user") {
				user = string(vals[i])
			}
		}
		if user != environments.DBUser {
			continue
		}
		for i, c := range cols {
			if m, ok := userStatistics[strings.ToLower(c)]; ok {
				if v, err := strconv.ParseFloat(string(vals[i]), 64); err == nil {
					out[m] = v
				}
			}
		}
	}
	return out, rows.Err()
}

// perfSchemaRow reads the traffic user's statement counts from MySQL's
// performance schema. Written to MySQL 8's documentation; this machine has
// no registry to pull an official image from, so it is not tested here.
func perfSchemaRow(ctx context.Context, db queryer) (map[string]float64, error) {
	const q = "SELECT COALESCE(SUM(IF(EVENT_NAME = 'statement/sql/select', COUNT_STAR, 0)), 0)," +
		" COALESCE(SUM(IF(EVENT_NAME = 'statement/sql/update', COUNT_STAR, 0)), 0)," +
		" COALESCE(SUM(IF(EVENT_NAME NOT IN ('statement/sql/select', 'statement/sql/update'), COUNT_STAR, 0)), 0)," +
		" COALESCE(SUM(SUM_TIMER_WAIT), 0) / 1e12, COALESCE(SUM(SUM_ROWS_EXAMINED), 0)" +
		" FROM performance_schema.events_statements_summary_by_user_by_event_name WHERE USER = '" + environments.DBUser + "'"
	var sel, upd, other, busy, rowsRead float64
	if err := db.QueryRowContext(ctx, q).Scan(&sel, &upd, &other, &busy, &rowsRead); err != nil {
		return nil, err
	}
	var conns float64
	err := db.QueryRowContext(ctx, "SELECT COALESCE(SUM(CURRENT_CONNECTIONS), 0) FROM performance_schema.users WHERE USER = '"+environments.DBUser+"'").Scan(&conns)
	if err != nil {
		return nil, err
	}
	return map[string]float64{mDBUserSelect: sel, mDBUserUpdate: upd, mDBUserOther: other, mDBUserBusy: busy,
		mDBUserRowsRead: rowsRead, mDBUserConnections: conns}, nil
}

// memcachedConn is the sampler's one connection to a memcached server,
// dialled again after a failure.
type memcachedConn struct {
	addr string
	tier bool // a tier server: its metrics are server_tier_*
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

func (m *memcachedConn) sample(ctx context.Context) (ServerLine, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn == nil {
		d := net.Dialer{}
		c, err := d.DialContext(ctx, "tcp", m.addr)
		if err != nil {
			return ServerLine{}, fmt.Errorf("memcached stats: %w", err)
		}
		m.conn, m.r = c, bufio.NewReader(c)
	}
	l, err := m.stats(ctx)
	if err != nil {
		m.conn.Close()
		m.conn = nil
		return ServerLine{}, fmt.Errorf("memcached stats: %w", err)
	}
	return l, nil
}

func (m *memcachedConn) stats(ctx context.Context) (ServerLine, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = m.conn.SetDeadline(dl)
	}
	// Stop does not wait out a reading's deadline.
	conn := m.conn
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })()
	if _, err := io.WriteString(m.conn, "stats\r\n"); err != nil {
		return ServerLine{}, err
	}
	l := ServerLine{Counters: map[string]float64{}, Gauges: map[string]float64{}}
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			return ServerLine{}, err
		}
		line = strings.TrimSpace(line)
		if line == "END" {
			break
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "STAT" {
			return ServerLine{}, fmt.Errorf("unexpected reply %q", line)
		}
		if metric, ok := memcachedStats[f[1]]; ok {
			if m.tier {
				metric, _ = tierMetric(metric)
			}
			if v, err := strconv.ParseFloat(f[2], 64); err == nil {
				l.put(metric, v)
			}
		}
	}
	return l, nil
}

func (m *memcachedConn) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
		m.conn.Close()
		m.conn = nil
	}
}

// containerStats reads one of the run's containers: one sample from the
// Docker API per tick of the sampler. Docker's stats stream paced itself
// (its collector sleeps a second after each round): under load its records
// came 1.12 s apart on average and up to 1.75 s, and the coverage check
// counted the gaps. A one-shot sample still carries the daemon's read
// time, which lags the tick by up to about 0.2 s.
//
// Where the harness runs on the Docker host, the container's cgroup files
// are read instead: what the daemon reads for its stats, without the
// daemon, which on a saturated 2-core host answered a one-shot sample
// late (plan-regression: each container missed 1-2 s of a 48 s run, and
// the coverage check counts them once a check reads server_cpu).
type containerStats struct {
	s       *Sampler
	runID   string
	service string
	id      string
	cg      *cgroupFiles // nil: not found (yet), read through the daemon
}

func (c *containerStats) sample(ctx context.Context) (ServerLine, error) {
	if c.id == "" {
		id, err := c.s.findContainer(ctx, c.runID, c.service)
		if err != nil {
			return ServerLine{}, err
		}
		c.id = id
		c.cg = findCgroup(cgroupRoot, id)
	}
	if c.cg != nil {
		if l, err := c.cg.read(); err == nil {
			return l, nil
		}
		c.cg = nil // gone or unreadable: the daemon from now on
	}
	res, err := c.s.docker.ContainerStats(ctx, c.id, client.ContainerStatsOptions{})
	if err != nil {
		c.id = "" // it may have been replaced
		return ServerLine{}, fmt.Errorf("docker stats: %w", err)
	}
	defer res.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return ServerLine{}, fmt.Errorf("docker stats: %w", err)
	}
	l, ok := containerLine(st)
	if !ok {
		return ServerLine{}, errors.New("docker stats: no CPU usage (the container is not running)")
	}
	return l, nil
}

// containerLine turns a stats record into a reading; a stopped container's
// records are empty and are not one.
func containerLine(st container.StatsResponse) (ServerLine, bool) {
	if st.Read.IsZero() || st.CPUStats.CPUUsage.TotalUsage == 0 {
		return ServerLine{}, false
	}
	mem := float64(st.MemoryStats.Usage)
	// As docker stats shows it: the page cache the kernel can drop is not
	// the container's memory (cgroup v2 names it inactive_file, v1
	// total_inactive_file).
	if v, ok := st.MemoryStats.Stats["inactive_file"]; ok && float64(v) < mem {
		mem -= float64(v)
	} else if v, ok := st.MemoryStats.Stats["total_inactive_file"]; ok && float64(v) < mem {
		mem -= float64(v)
	}
	return ServerLine{Type: LineSample, T: st.Read,
		Counters: map[string]float64{mCPU: float64(st.CPUStats.CPUUsage.TotalUsage) / 1e9},
		Gauges:   map[string]float64{mMem: mem / (1 << 20)},
	}, true
}

// cgroupRoot is where the host's cgroup file systems are mounted.
var cgroupRoot = "/sys/fs/cgroup"

// cgroupFiles are the files of one container's cgroup that hold its CPU
// time and memory: cgroup v1 (cpuacct.usage in ns, memory.usage_in_bytes)
// or v2 (cpu.stat usage_usec, memory.current).
type cgroupFiles struct {
	cpu, mem, memStat string
	v2                bool
}

// findCgroup finds container id's cgroup under root, with Docker's
// cgroupfs or systemd driver; nil when the harness cannot see it (a remote
// engine, Docker Desktop, another cgroup namespace).
func findCgroup(root, id string) *cgroupFiles {
	v1 := &cgroupFiles{
		cpu: filepath.Join(root, "cpuacct", "docker", id, "cpuacct.usage"),
		mem: filepath.Join(root, "memory", "docker", id, "memory.usage_in_bytes"), memStat: filepath.Join(root, "memory", "docker", id, "memory.stat"),
	}
	if _, err := os.Stat(v1.cpu); err == nil {
		return v1
	}
	for _, dir := range []string{filepath.Join(root, "system.slice", "docker-"+id+".scope"), filepath.Join(root, "docker", id)} {
		if _, err := os.Stat(filepath.Join(dir, "cpu.stat")); err == nil {
			return &cgroupFiles{cpu: filepath.Join(dir, "cpu.stat"), mem: filepath.Join(dir, "memory.current"),
				memStat: filepath.Join(dir, "memory.stat"), v2: true}
		}
	}
	return nil
}

// read is one reading: CPU seconds and memory in MiB less the page cache
// the kernel can drop, as containerLine makes of the daemon's stats.
func (g *cgroupFiles) read() (ServerLine, error) {
	t := time.Now()
	var cpu float64
	if g.v2 {
		v, err := statField(g.cpu, "usage_usec")
		if err != nil {
			return ServerLine{}, err
		}
		cpu = v / 1e6
	} else {
		v, err := fileNumber(g.cpu)
		if err != nil {
			return ServerLine{}, err
		}
		cpu = v / 1e9
	}
	mem, err := fileNumber(g.mem)
	if err != nil {
		return ServerLine{}, err
	}
	inactive := "total_inactive_file"
	if g.v2 {
		inactive = "inactive_file"
	}
	if v, err := statField(g.memStat, inactive); err == nil && v < mem {
		mem -= v
	}
	return ServerLine{Type: LineSample, T: t, Counters: map[string]float64{mCPU: cpu}, Gauges: map[string]float64{mMem: mem / (1 << 20)}}, nil
}

func fileNumber(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
}

// statField is the value of name in a cgroup stat file of "name value"
// lines.
func statField(path, name string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == name {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, name)
}

// findContainer finds the run's container of service by its labels.
func (s *Sampler) findContainer(ctx context.Context, runID, service string) (string, error) {
	f := client.Filters{}
	f.Add("label", environments.LabelRun+"="+runID)
	f.Add("label", environments.LabelService+"="+service)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := s.docker.ContainerList(lctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return "", fmt.Errorf("docker: list %s: %w", service, err)
	}
	for _, c := range res.Items {
		if c.Labels[environments.LabelRun] == runID && c.Labels[environments.LabelService] == service {
			return c.ID, nil
		}
	}
	return "", fmt.Errorf("docker: no running container of %s in run %s", service, runID)
}

// lineWriter appends JSON lines to a file, one write per line, so a
// reader (or a run killed mid-way) sees whole lines only.
type lineWriter struct {
	mu  sync.Mutex
	f   *os.File
	err error
}

func (w *lineWriter) write(v any) {
	b, err := json.Marshal(v)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil || w.f == nil {
		return
	}
	if err != nil {
		w.err = err
		return
	}
	if _, err := w.f.Write(append(b, '\n')); err != nil {
		w.err = err
	}
}

func (w *lineWriter) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return w.err
	}
	err := errors.Join(w.err, w.f.Close())
	w.f = nil
	return err
}

// appMetricPrefix starts the name of every metric read from the service
// under test: its Prometheus metric example_requests_total is
// app_example_requests_total in checks and series.
const appMetricPrefix = "app_"

// promSource reads a service's Prometheus metrics over HTTP.
type promSource struct {
	url    string
	client *http.Client
}

// sample reads the metrics once. A counter (and a histogram's or
// summary's _sum and _count) is a running total; a gauge (and an untyped
// value) a value at the reading. Labels are summed over: a check names
// app_NAME; the series keep one line per metric.
func (p *promSource) sample(ctx context.Context) (ServerLine, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return ServerLine{}, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return ServerLine{}, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ServerLine{}, fmt.Errorf("metrics: GET %s: %s", p.url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return ServerLine{}, fmt.Errorf("metrics: %w", err)
	}
	l := ServerLine{Counters: map[string]float64{}, Gauges: map[string]float64{}}
	for name, f := range fams {
		n := appMetricPrefix + name
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				l.Counters[n] += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				l.Gauges[n] += m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				l.Gauges[n] += m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				l.Counters[n+"_sum"] += m.GetHistogram().GetSampleSum()
				l.Counters[n+"_count"] += float64(m.GetHistogram().GetSampleCount())
			case dto.MetricType_SUMMARY:
				l.Counters[n+"_sum"] += m.GetSummary().GetSampleSum()
				l.Counters[n+"_count"] += float64(m.GetSummary().GetSampleCount())
			}
		}
	}
	return l, nil
}
