package database

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// OnlineTool is the online schema change tool StormOnline runs.
const OnlineTool = "pt-online-schema-change"

// onlineReady says what StormOnline lacks on this host, if anything.
func onlineReady(in *Injector) error {
	if in.dsn == "" {
		return errors.New("method online runs an external tool that needs the DSN: open the injector with Open")
	}
	if _, err := exec.LookPath(OnlineTool); err != nil {
		return fmt.Errorf("method online needs %s on the host: apt-get install percona-toolkit", OnlineTool)
	}
	return nil
}

// onlineDSN is the tool's DSN ("h=...,P=...,u=...,p=...,D=...,t=...") for
// schema's tenant table, from the injector's go-sql-driver DSN.
func (in *Injector) onlineDSN(schema string) (string, error) {
	c, err := mysql.ParseDSN(in.dsn)
	if err != nil {
		return "", fmt.Errorf("parse dsn: %w", err)
	}
	if c.Net != "tcp" {
		return "", fmt.Errorf("dsn network %q: the tool connects over tcp", c.Net)
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return "", fmt.Errorf("dsn address %q: %w", c.Addr, err)
	}
	for _, v := range []string{c.User, c.Passwd} {
		if strings.ContainsAny(v, ",=") {
			return "", errors.New("dsn user or password holds ',' or '=': the tool's DSN cannot carry it")
		}
	}
	return fmt.Sprintf("h=%s,P=%s,u=%s,p=%s,D=%s,t=%s", host, port, c.User, c.Passwd, schema, TenantTable), nil
}

// online migrates schema's tenant table to typ with the online tool. The
// tool is interrupted (SIGINT, on which it drops its triggers and shadow
// table) when ctx ends; whatever it leaves is dropped after it exits.
func (s *Storm) online(ctx context.Context, schema, typ string) (err error) {
	dsn, err := s.in.onlineDSN(schema)
	if err != nil {
		return fmt.Errorf("online %s: %w", schema, err)
	}
	defer func() {
		if e := s.in.dropOnlineLeftovers(context.WithoutCancel(ctx), schema); e != nil && err == nil {
			err = e
		}
	}()
	args := []string{
		"--alter", fmt.Sprintf("MODIFY `%s` %s", s.cfg.Column, typ),
		"--execute",
		"--chunk-time", strconv.FormatFloat(s.cfg.ChunkTime.Seconds(), 'f', -1, 64),
		"--critical-load", "Threads_running=" + strconv.Itoa(s.cfg.CriticalThreadsRunning),
		// no replicas here: do not look for them
		"--recursion-method", "none",
		"--no-check-replication-filters",
		// the swap waits 1 s at most for the table's lock, then tries again,
		// rather than queueing every write behind it
		"--set-vars", "lock_wait_timeout=1",
		"--tries", "create_triggers:20:0.5,drop_triggers:20:0.5,swap_tables:20:0.5,copy_rows:10:0.25",
		"--progress", "time,5",
		dsn,
	}
	if s.cfg.ThrottleThreadsRunning > 0 {
		args = append(args, "--max-load", "Threads_running="+strconv.Itoa(s.cfg.ThrottleThreadsRunning))
	}
	cmd := exec.CommandContext(ctx, OnlineTool, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second // then killed; the deferred drop cleans up
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("online %s: %s after %v: %w: %s", schema, OnlineTool, time.Since(start).Round(time.Millisecond), err, tailLines(out.String(), 6))
	}
	if n := copiedRows(out.String()); n > 0 {
		s.mu.Lock()
		s.rows += n
		s.mu.Unlock()
	}
	return nil
}

// dropOnlineLeftovers removes what an interrupted or killed tool run may
// leave on schema: its triggers and its shadow and old tables.
func (in *Injector) dropOnlineLeftovers(ctx context.Context, schema string) error {
	base := "`" + schema + "`."
	for _, ev := range []string{"ins", "upd", "del"} {
		if err := in.exec(ctx, fmt.Sprintf("DROP TRIGGER IF EXISTS %spt_osc_%s_%s_%s", base, schema, TenantTable, ev)); err != nil {
			return fmt.Errorf("online %s: drop trigger: %w", schema, err)
		}
	}
	if err := in.exec(ctx, "DROP TABLE IF EXISTS "+base+"`_"+TenantTable+"_new`, "+base+"`_"+TenantTable+"_old`"); err != nil {
		return fmt.Errorf("online %s: drop shadow tables: %w", schema, err)
	}
	return nil
}

// copiedRows reads the tool's "Copied rows OK" line count from its
// progress, 0 when it printed none.
func copiedRows(out string) int64 {
	// The tool prints "Copying approximately N rows..." before the copy.
	for _, l := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(l, "Copying approximately "); ok {
			if n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64); err == nil {
				return n
			}
		}
	}
	return 0
}

func tailLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}
