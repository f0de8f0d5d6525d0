package database

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/firedrill-dev/firedrill/faults"
)

// KillerConfig configures a query killer. Zero fields take the defaults.
type KillerConfig struct {
	// Threshold: queries running longer are killed. Required (> 0).
	Threshold time.Duration
	// Interval between processlist scans (default 100ms). MySQL's
	// processlist counts whole seconds, so there the effective threshold is
	// rounded up to a second; MariaDB's TIME_MS is exact.
	Interval time.Duration
	// MaxPerScan bounds the kills per scan (default 100), so a bug here
	// cannot turn into a kill storm.
	MaxPerScan int
	// Prefix: only statements starting with it (case-insensitive) are
	// killed (default "SELECT"): the killer protects against runaway reads,
	// never against the harness's own DDL or a client's writes.
	Prefix string
	// User: only this user's statements are killed ("" = any user except
	// the killer's own connection).
	User string
	// MaxDuration stops the killer on its own after this long (default 1h),
	// a bound in case nobody stops it.
	MaxDuration time.Duration
}

// Killer is a running query killer.
type Killer struct {
	in     *Injector
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	rec    faults.Recorder // where the remove event goes; see ReportTo
	killed int
	scans  int
	err    error
}

// KillerStats is what a killer did.
type KillerStats struct {
	Killed  int    `json:"killed"`
	Scans   int    `json:"scans"`
	Running bool   `json:"running"`
	Error   string `json:"error,omitempty"`
}

// StartQueryKiller starts a goroutine that KILL QUERYs every statement
// running longer than cfg.Threshold. KILL QUERY (not KILL) ends the statement
// with error 1317 and keeps the client's connection, as ProxySQL-style
// killers and pt-kill do. It stops on Stop, on ctx's end, or after
// cfg.MaxDuration. Reported as query_killer inject/remove.
func (in *Injector) StartQueryKiller(ctx context.Context, cfg KillerConfig) (*Killer, error) {
	if cfg.Threshold <= 0 {
		return nil, errors.New("database query killer: threshold must be > 0")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.MaxPerScan <= 0 {
		cfg.MaxPerScan = 100
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "SELECT"
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = time.Hour
	}
	kctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	k := &Killer{in: in, cancel: cancel, done: make(chan struct{}), rec: in.rec}
	in.st.mu.Lock()
	in.st.killers[k] = true
	in.st.mu.Unlock()
	in.event(FaultQueryKiller, faults.Inject, in.target, "")
	go k.run(kctx, cfg)
	return k, nil
}

func (k *Killer) run(ctx context.Context, cfg KillerConfig) {
	// However the killer ends, it leaves the state and reports its removal.
	defer func() {
		k.in.st.mu.Lock()
		delete(k.in.st.killers, k)
		k.in.st.mu.Unlock()
		k.mu.Lock()
		rec := k.rec
		k.mu.Unlock()
		rec.Record(faults.Event{Fault: FaultQueryKiller, Action: faults.Remove, Target: k.in.target, Marker: true})
		k.cancel()
		close(k.done)
	}()
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := k.scan(ctx, cfg)
		k.mu.Lock()
		k.scans++
		k.killed += n
		if err != nil && ctx.Err() == nil {
			k.err = err // keep the last; scans go on, the server may be busy
		}
		k.mu.Unlock()
	}
}

func (k *Killer) scan(ctx context.Context, cfg KillerConfig) (int, error) {
	in := k.in
	// A scan must not outlive an interval by much: bound it by the interval
	// plus the statement timeout's floor of one second.
	sctx, cancel := context.WithTimeout(ctx, cfg.Interval+time.Second)
	defer cancel()
	elapsed := "TIME_MS"
	if in.flavor == MySQL {
		elapsed = "TIME * 1000"
	}
	q := `SELECT ID FROM information_schema.PROCESSLIST
		WHERE COMMAND = 'Query' AND ID <> CONNECTION_ID()
		AND ` + elapsed + ` > ? AND UPPER(LTRIM(INFO)) LIKE CONCAT(UPPER(?), '%')
		AND (? = '' OR USER = ?)
		ORDER BY ` + elapsed + ` DESC LIMIT ?`
	n, err := in.killListed(sctx, q, cfg.Threshold.Milliseconds(), cfg.Prefix, cfg.User, cfg.User, cfg.MaxPerScan)
	if err != nil {
		return n, fmt.Errorf("query killer: %w", err)
	}
	return n, nil
}

// killListed kills (KILL QUERY) every statement whose processlist ID the
// query list returns. One that ended between the list and its kill
// ("Unknown thread id", 1094) is expected and not counted.
func (in *Injector) killListed(ctx context.Context, list string, args ...any) (int, error) {
	rows, err := in.db.QueryContext(ctx, list, args...)
	if err != nil {
		return 0, fmt.Errorf("list queries: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("list queries: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("list queries: %w", err)
	}
	// Several at once: a revert waits on every one of them, and each KILL is
	// a round trip to a busy server.
	var (
		mu      sync.Mutex
		killed  int
		errs    []error
		wg      sync.WaitGroup
		pending = make(chan int64)
	)
	for range min(4, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range pending {
				_, err := in.db.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", id))
				mu.Lock()
				switch {
				case err == nil:
					killed++
				case !strings.Contains(err.Error(), "1094"):
					errs = append(errs, fmt.Errorf("kill query %d: %w", id, err))
				}
				mu.Unlock()
			}
		}()
	}
send:
	for _, id := range ids {
		select {
		case pending <- id:
		case <-ctx.Done():
			break send
		}
	}
	close(pending)
	wg.Wait()
	if len(errs) > 0 {
		return killed, errs[0]
	}
	return killed, nil
}

// ReportTo sends the killer's remove event to r instead of the recorder of
// the injector that started it (see Storm.ReportTo).
func (k *Killer) ReportTo(r faults.Recorder) {
	k.mu.Lock()
	k.rec = r
	k.mu.Unlock()
}

// Stop stops the killer and waits for it; safe to call twice.
func (k *Killer) Stop() KillerStats {
	k.cancel()
	<-k.done
	return k.Stats()
}

// Stats reports what the killer did so far.
func (k *Killer) Stats() KillerStats {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := KillerStats{Killed: k.killed, Scans: k.scans, Running: true}
	select {
	case <-k.done:
		s.Running = false
	default:
	}
	if k.err != nil {
		s.Error = k.err.Error()
	}
	return s
}
