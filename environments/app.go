package environments

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
)

// The service under test: a team's own image, started in the run's
// network beside the servers, reaching each of them through its Toxiproxy
// proxy (by the proxy's network alias, never 127.0.0.1), so every fault a
// drill injects reaches the service.

// AppSpec is one release of the service under test.
type AppSpec struct {
	// Name is the release's name in the run: "app" for one service,
	// "base" and "head" for two releases side by side. It is the
	// container's network alias (app-NAME) and its label.
	Name  string
	Image string
	// Port is the HTTP port inside the container.
	Port int
	// Health is the path of its health check (GET, 2xx when ready).
	Health string
	// Env are its environment variables; a value may name an endpoint,
	// {{mysql.dsn}} (see Endpoints), resolved when it starts.
	Env map[string]string
	// CPUs and MemoryMB limit the container (0: no limit).
	CPUs     float64
	MemoryMB int
	// Startup bounds the wait for the health check (default 60 s).
	Startup time.Duration
}

// App is a running release of the service under test.
type App struct {
	Name    string
	Image   string
	ImageID string // sha256:...
	URL     string // http://127.0.0.1:PORT: its published port
	Alias   string // its name in the run's network
	c       testcontainers.Container
}

// AppService is the container service name (and label) of release name.
func AppService(name string) string { return "app-" + name }

// endpointRef is one {{name}} in a value.
var endpointRef = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// EndpointNames are the names a service's settings may use, for an
// environment of memcached servers: each an address inside the run's
// network, through its Toxiproxy proxy.
func EndpointNames(memcached int) []string {
	names := []string{"mysql.dsn", "mysql.addr", "mysql.host", "mysql.port", "mysql.user", "mysql.password", "mysql.database",
		"memcached.servers", "memcached.count", "tier.servers", "tier.count"}
	for i := range memcached {
		names = append(names, "memcached."+strconv.Itoa(i))
	}
	return names
}

// Endpoints are the environment's endpoints as a service inside the run's
// network sees them: every server through its proxy, by the proxy's
// network alias.
func Endpoints(memcached int) map[string]string {
	const proxy = "toxiproxy"
	db := fmt.Sprintf("%s:%d", proxy, toxiproxyMySQLPort)
	out := map[string]string{
		"mysql.dsn":       fmt.Sprintf("%s:%s@tcp(%s)/%s", DBUser, DBPassword, db, DBName),
		"mysql.addr":      db,
		"mysql.host":      proxy,
		"mysql.port":      strconv.Itoa(toxiproxyMySQLPort),
		"mysql.user":      DBUser,
		"mysql.password":  DBPassword,
		"mysql.database":  DBName,
		"memcached.count": strconv.Itoa(memcached),
	}
	var all []string
	for i := range memcached {
		a := fmt.Sprintf("%s:%d", proxy, toxiproxyMemcachedAt+i)
		out["memcached."+strconv.Itoa(i)] = a
		all = append(all, a)
	}
	out["memcached.servers"] = strings.Join(all, ",")
	// A drill without a second cache tier (@tier) has none: the names
	// still resolve, to nothing, so one service file serves every drill.
	out["tier.servers"], out["tier.count"] = "", "0"
	return out
}

// endpoints are Endpoints with this environment's tier: tier.servers,
// tier.count and tier.0 ... through their proxies.
func (e *Env) endpoints() map[string]string {
	out := Endpoints(len(e.Memcached))
	var all []string
	for i, s := range e.Tier {
		a := fmt.Sprintf("toxiproxy:%d", s.ListenPort)
		out["tier."+strconv.Itoa(i)] = a
		all = append(all, a)
	}
	out["tier.servers"], out["tier.count"] = strings.Join(all, ","), strconv.Itoa(len(e.Tier))
	return out
}

// ResolveEndpoints replaces every {{name}} in s with the endpoint's value.
// An unknown name is an error that lists the known ones.
func ResolveEndpoints(s string, endpoints map[string]string) (string, error) {
	var bad []string
	out := endpointRef.ReplaceAllStringFunc(s, func(m string) string {
		name := endpointRef.FindStringSubmatch(m)[1]
		v, ok := endpoints[name]
		if !ok {
			bad = append(bad, name)
			return m
		}
		return v
	})
	if len(bad) > 0 {
		known := make([]string, 0, len(endpoints))
		for k := range endpoints {
			known = append(known, "{{"+k+"}}")
		}
		slices.Sort(known)
		return "", fmt.Errorf("unknown endpoint {{%s}}: the environment has %s", strings.Join(bad, "}}, {{"), strings.Join(known, ", "))
	}
	return out, nil
}

// ImageID is the local image's id, or an error saying it is not there:
// firedrill never pulls (testcontainers would, and hang without a
// registry).
func ImageID(ctx context.Context, image string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", image).Output()
	if err != nil {
		return "", fmt.Errorf("image %s is not in the local Docker engine (firedrill does not pull): build it (docker build -t %s .) or load it (docker load)", image, image)
	}
	return strings.TrimSpace(string(out)), nil
}

// SeedSQL runs the statements of the file at path on the database, as
// root over the admin port: the service's schema and data, loaded before
// it starts.
func (e *Env) SeedSQL(ctx context.Context, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("seed sql: %w", err)
	}
	cfg, err := mysql.ParseDSN(e.DB.AdminDSN)
	if err != nil {
		return fmt.Errorf("seed sql: %w", err)
	}
	cfg.MultiStatements = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return fmt.Errorf("seed sql: %w", err)
	}
	defer db.Close()
	start := time.Now()
	if _, err := db.ExecContext(ctx, string(b)); err != nil {
		return fmt.Errorf("seed sql %s: %w", path, err)
	}
	fmt.Fprintf(e.progress, "env: loaded %s in %s\n", path, time.Since(start).Round(10*time.Millisecond))
	return nil
}

// StartApp starts a release of the service under test in the run's
// network, its port published on 127.0.0.1, labelled with the run like
// every other container (Down and the reaper remove it), and waits for
// its health check. An error names what went wrong (the container exited,
// nothing answers on its port, the health check never passed) with the
// service's last log lines.
func (e *Env) StartApp(ctx context.Context, spec AppSpec) (*App, error) {
	if spec.Startup <= 0 {
		spec.Startup = time.Minute
	}
	what := fmt.Sprintf("app %s (%s)", spec.Name, spec.Image)
	id, err := ImageID(ctx, spec.Image)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ends := e.endpoints()
	env := map[string]string{}
	for k, v := range spec.Env {
		r, err := ResolveEndpoints(v, ends)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", what, k, err)
		}
		env[k] = r
	}
	port := fmt.Sprintf("%d/tcp", spec.Port)
	alias := AppService(spec.Name)
	opts := append(e.common(alias, alias),
		testcontainers.WithExposedPorts(port),
		loopbackPorts(port),
		testcontainers.WithEnv(env),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			if spec.CPUs > 0 {
				hc.NanoCPUs = int64(spec.CPUs * 1e9)
			}
			if spec.MemoryMB > 0 {
				hc.Memory = int64(spec.MemoryMB) << 20
			}
		}),
	)
	fmt.Fprintf(e.progress, "env: starting %s\n", what)
	c, err := testcontainers.Run(ctx, spec.Image, opts...)
	e.add(c)
	// The partial App on error, as testcontainers returns the partial
	// container: the caller saves its logs.
	partial := &App{Name: spec.Name, Image: spec.Image, ImageID: id, Alias: alias, c: c}
	if err != nil {
		if c == nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return partial, fmt.Errorf("%s: %w%s", what, err, logTail(ctx, c))
	}
	mp, err := c.MappedPort(ctx, port)
	if err != nil {
		return partial, fmt.Errorf("%s: port %d: %w%s", what, spec.Port, err, logTail(ctx, c))
	}
	a := partial
	a.URL = "http://127.0.0.1:" + mp.Port()
	start := time.Now()
	if err := a.waitHealthy(ctx, spec); err != nil {
		return a, fmt.Errorf("%s: %w%s", what, err, logTail(ctx, c))
	}
	fmt.Fprintf(e.progress, "env: %s healthy at %s in %s\n", what, a.URL, time.Since(start).Round(100*time.Millisecond))
	return a, nil
}

// waitHealthy polls the health check until it answers 2xx. Through
// Docker's port publishing a connection to the host port succeeds even
// when nothing listens inside; the proxy then closes it, so "nothing
// listens" shows as no HTTP answer at all.
func (a *App) waitHealthy(ctx context.Context, spec AppSpec) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(spec.Startup)
	answered := false
	var last string
	for {
		if st, err := a.c.State(ctx); err == nil && !st.Running {
			return fmt.Errorf("the container exited (code %d) before its health check passed", st.ExitCode)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+spec.Health, nil)
		if err != nil {
			return fmt.Errorf("health check %s: %w", spec.Health, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return nil
			}
			answered = true
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(bytes.SplitN(body, []byte("\n"), 2)[0])))
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the health check: %w", context.Cause(ctx))
		}
		if time.Now().After(deadline) {
			if !answered {
				return fmt.Errorf("nothing answered HTTP on container port %d within %s: is the port right (--app-port), and does the service listen on 0.0.0.0? (last: %s)",
					spec.Port, spec.Startup, last)
			}
			return fmt.Errorf("health check GET %s never passed within %s (last answer: %s)", spec.Health, spec.Startup, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Logs are the service's output so far (stdout and stderr).
func (a *App) Logs(ctx context.Context) ([]byte, error) {
	if a == nil || a.c == nil {
		return nil, errors.New("no container")
	}
	r, err := a.c.Logs(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// logTail is the container's last log lines, for an error message.
func logTail(ctx context.Context, c testcontainers.Container) string {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	r, err := c.Logs(lctx)
	if err != nil {
		return ""
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	t := strings.TrimSpace(tail(string(b), 15))
	if t == "" {
		return "\n  (the service logged nothing)"
	}
	return "\n  its last log lines:\n    " + strings.ReplaceAll(t, "\n", "\n    ")
}
