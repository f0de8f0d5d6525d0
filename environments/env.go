// Package environments starts and removes firedrill's test topology with
// testcontainers-go: one Docker network per run, a MySQL-compatible database,
// N memcached servers and one Toxiproxy with a proxy in front of each of them.
// Clients reach every server only through its proxy, so faults injected in
// Toxiproxy hit all traffic.
package environments

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/firedrill-dev/firedrill/envvar"

	"github.com/go-sql-driver/mysql"
	"github.com/moby/moby/api/types/container"
	dnetwork "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

func init() {
	// This machine has /.dockerenv, so testcontainers believes it runs in a
	// container and dials the bridge gateway, which is unreachable. Every
	// port is published on 127.0.0.1, so that is the host. Ryuk's image
	// cannot be pulled; the harness removes its own containers by label.
	// testcontainers reads both once, so they are set before its first use.
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" {
		os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	// The harness prints its own progress lines; testcontainers' per-call
	// log would drown them. FIREDRILL_DEBUG=1 brings it back.
	if os.Getenv(envvar.Debug) == "" {
		tclog.SetDefault(tclog.NewNoopLogger())
		// Readiness polls a server that is still starting; each refused
		// attempt is expected, not worth a log line.
		_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	}
}

// Database credentials and names inside every environment. Traffic
// connects as DBUser, an ordinary user: MariaDB and MySQL keep one
// connection past max_connections for SUPER users, and drill traffic must
// not take it. The harness and fault injectors connect as DBAdminUser over
// the admin port (MariaDB extra_port, MySQL admin_port), which has
// connections of its own.
const (
	DBUser           = "firedrill"
	DBAdminUser      = "root"
	DBPassword       = "firedrill"
	DBName           = "firedrill"
	mariadbAdminPort = "3307/tcp"  // extra_port, set by the image's entrypoint
	mysqlAdminPort   = "33062/tcp" // admin_port, set by the harness
)

// trafficGrants are the traffic user's rights: rows, and the processlist
// (a contended fill query counts the queries running). No SUPER or
// CONNECTION ADMIN.
const trafficGrants = "SELECT, INSERT, UPDATE, DELETE, PROCESS"

// Ports inside the Toxiproxy container: one listener per proxied server.
const (
	toxiproxyAPIPort     = 8474
	toxiproxyMySQLPort   = 23306
	toxiproxyMemcachedAt = 21000 // memcached-i listens on 21000+i
	toxiproxyTierAt      = 22000 // tier-i listens on 22000+i
)

// The routes from this host to the proxies, for Env.Route.
const (
	// RouteNetwork: the Toxiproxy container's address on the run's
	// network. Preferred: a port published on 127.0.0.1 passes through
	// docker-proxy, a userland copy of every byte. Under drill traffic the
	// three docker-proxy processes took 0.4 of this 2-core host's cores
	// (measured), CPU the throttled database then lacked.
	RouteNetwork = "network"
	// RoutePublished: Toxiproxy's ports published on 127.0.0.1, where the
	// run's network cannot be reached from the host (Docker Desktop, a
	// remote engine).
	RoutePublished = "published"
)

// Server is one memcached server of the environment.
type Server struct {
	Name       string // network alias and proxy name, e.g. "memcached-0"
	ProxyAddr  string // host:port through Toxiproxy: where traffic goes (see Env.Route)
	DirectAddr string // 127.0.0.1:port of the server itself: checks only
	// ListenPort is its proxy's port inside the Toxiproxy container, where a
	// fault in Toxiproxy's network namespace acts (container.Unreachable).
	ListenPort int
}

// Database is the environment's MySQL-compatible server.
type Database struct {
	Image      string
	Flavor     string // "mariadb" or "mysql"
	Version    string // as SELECT VERSION() reports it
	Proxy      string // Toxiproxy proxy name
	ProxyAddr  string
	DirectAddr string
	DSN        string // go-sql-driver DSN through the proxy, as the traffic user: for traffic
	AdminDSN   string // direct DSN over the admin port, as root: for seeding, faults and checks
	AdminAddr  string // 127.0.0.1:port of the admin port
}

// Env is a running environment. Down removes it.
type Env struct {
	RunID string
	// DBCPUs is the database container's CPU quota in cores (0: none).
	DBCPUs    float64
	Network   string
	DB        Database
	Memcached []Server
	// Tier is a second cache tier of its own (WithTier), "tier-i" behind
	// proxies of the same names: a dependency a drill can make unreachable
	// on its own.
	Tier         []Server
	ToxiproxyURL string
	Images       map[string]string
	// Route is how clients on this host reach the proxies: RouteNetwork
	// or RoutePublished.
	Route string

	mu         sync.Mutex
	containers []testcontainers.Container
	db         testcontainers.Container
	net        *testcontainers.DockerNetwork
	progress   io.Writer
}

// Option configures Up.
type Option func(*config)

type config struct {
	memcached  int
	tier       int
	dbImage    string
	dbArgs     []string
	progress   io.Writer
	runID      string
	startup    time.Duration
	memcacheMB int
	dbTmpfsMB  int
	dbCPUs     float64
}

// WithMemcached sets the number of memcached servers. Default 3.
func WithMemcached(n int) Option { return func(c *config) { c.memcached = n } }

// WithTier adds n memcached servers of a second cache tier, "tier-0" ...,
// each behind a Toxiproxy proxy of its own. Default 0.
func WithTier(n int) Option { return func(c *config) { c.tier = n } }

// WithMySQLImage runs the database from image instead of MariaDBImage. An
// official mysql:8.x image works where a registry can serve it.
func WithMySQLImage(image string) Option { return func(c *config) { c.dbImage = image } }

// WithDBArgs passes extra server arguments, such as "--max-connections=60".
func WithDBArgs(args ...string) Option {
	return func(c *config) { c.dbArgs = append(c.dbArgs, args...) }
}

// WithProgress sends progress lines to w. Default: os.Stderr.
func WithProgress(w io.Writer) Option { return func(c *config) { c.progress = w } }

// WithRunID names the run; every container and network is labelled with it.
// Default: a fresh id from NewRunID.
func WithRunID(id string) Option { return func(c *config) { c.runID = id } }

// WithStartupTimeout bounds how long each service may take to answer.
// Default 2 minutes.
func WithStartupTimeout(d time.Duration) Option { return func(c *config) { c.startup = d } }

// WithDBMemory sizes the in-memory filesystem that holds the database's
// data directory, in MiB. Default 4096 (enough for about 10 million seeded
// rows); only what is used takes memory.
func WithDBMemory(mb int) Option { return func(c *config) { c.dbTmpfsMB = mb } }

// WithDBCPUs runs the database under a CPU quota of n cores (the
// container's NanoCPUs), so its capacity is a property of the drill, not
// of the machine's idle cores, and work queued on it contends for the
// quota as on a loaded server. Default DefaultDBCPUs; 0 is no quota.
func WithDBCPUs(n float64) Option { return func(c *config) { c.dbCPUs = n } }

// DefaultDBCPUs is the database's CPU quota by default: one core.
const DefaultDBCPUs = 1.0

// WithMemcachedMemory sets each memcached server's memory in MiB. Default 256.
func WithMemcachedMemory(mb int) Option { return func(c *config) { c.memcacheMB = mb } }

// Up starts an environment. On error it returns the partial environment
// (which the caller must still Down) together with the error.
func Up(ctx context.Context, opts ...Option) (*Env, error) {
	cfg := config{memcached: 3, dbImage: MariaDBImage, progress: os.Stderr, startup: 2 * time.Minute, memcacheMB: 256, dbTmpfsMB: 4096, dbCPUs: DefaultDBCPUs}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.memcached < 1 || cfg.memcached > 64 {
		return nil, fmt.Errorf("environment up: memcached servers must be between 1 and 64, got %d", cfg.memcached)
	}
	if cfg.tier < 0 || cfg.tier > 16 {
		return nil, fmt.Errorf("environment up: tier servers must be between 0 and 16, got %d", cfg.tier)
	}
	if cfg.dbCPUs < 0 || cfg.dbCPUs > float64(runtime.NumCPU()) {
		return nil, fmt.Errorf("environment up: the database's CPU quota must be between 0 (none) and the machine's %d cores, got %v", runtime.NumCPU(), cfg.dbCPUs)
	}
	if cfg.runID == "" {
		cfg.runID = NewRunID()
	}
	if missing := MissingImages(ctx, cfg.dbImage); len(missing) > 0 && cfg.dbImage == MariaDBImage {
		return nil, fmt.Errorf("environment up: images missing: %s (run `make images` or `firedrill images`)", strings.Join(missing, ", "))
	}
	e := &Env{RunID: cfg.runID, DBCPUs: cfg.dbCPUs, progress: cfg.progress, Images: map[string]string{
		"database": cfg.dbImage, "memcached": MemcachedImage, "toxiproxy": ToxiproxyImage,
	}}
	// Reap what dead runs left behind before adding more.
	if n, err := Reap(ctx); err != nil {
		fmt.Fprintf(cfg.progress, "env: reaping stale environments: %v\n", err)
	} else if n > 0 {
		fmt.Fprintf(cfg.progress, "env: removed %d containers and networks left by runs that are gone\n", n)
	}

	start := time.Now()
	tier := ""
	if cfg.tier > 0 {
		tier = fmt.Sprintf(", %d tier", cfg.tier)
	}
	fmt.Fprintf(cfg.progress, "env: starting run %s: network, database, %d memcached%s, toxiproxy\n", e.RunID, cfg.memcached, tier)
	nw, err := network.New(ctx, network.WithLabels(Labels(e.RunID, "network")))
	if nw != nil {
		e.net = nw
		e.Network = nw.Name
	}
	if err != nil {
		return e, fmt.Errorf("environment up: network: %w", err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, cfg.memcached+cfg.tier+2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := e.startDatabase(ctx, &cfg); err != nil {
			errs <- err
		}
	}()
	e.Memcached, e.Tier = make([]Server, cfg.memcached), make([]Server, cfg.tier)
	for prefix, servers := range map[string][]Server{"memcached": e.Memcached, "tier": e.Tier} {
		for i := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.startMemcached(ctx, &cfg, fmt.Sprintf("%s-%d", prefix, i), &servers[i]); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := e.startToxiproxy(ctx, &cfg); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		return e, fmt.Errorf("environment up: %w", errors.Join(all...))
	}
	if err := e.createProxies(ctx); err != nil {
		return e, fmt.Errorf("environment up: %w", err)
	}
	if err := e.checkThroughProxies(ctx); err != nil {
		return e, fmt.Errorf("environment up: %w", err)
	}
	fmt.Fprintf(cfg.progress, "env: run %s up in %s (%s %s; traffic reaches toxiproxy at %s, route %q)\n", e.RunID, time.Since(start).Round(100*time.Millisecond), e.DB.Flavor, e.DB.Version, e.DB.ProxyAddr, e.Route)
	return e, nil
}

// SetDBThreadNice sets the nice value of one of the database server's
// threads, by its thread ID inside the container (MariaDB's
// information_schema.PROCESSLIST.TID, MySQL's
// performance_schema.threads.THREAD_OS_ID). Under the database's CPU quota
// every thread shares one core by weight, so at nice -15 a connection's
// thread gets about 30 times a busy query's share: the harness raises its
// sampler's thread so that a saturated database is still read every
// second, and puts a thread it gave up back to 0.
func (e *Env) SetDBThreadNice(ctx context.Context, tid int64, nice int) error {
	if e.db == nil {
		return errors.New("set database thread priority: no database container")
	}
	code, out, err := e.db.Exec(ctx, []string{"renice", "-n", strconv.Itoa(nice), "-p", strconv.FormatInt(tid, 10)}, tcexec.Multiplexed())
	if err != nil {
		return fmt.Errorf("set database thread priority: %w", err)
	}
	if code != 0 {
		msg, _ := io.ReadAll(io.LimitReader(out, 512))
		return fmt.Errorf("set database thread priority: renice -n %d -p %d exited %d: %s", nice, tid, code, strings.TrimSpace(string(msg)))
	}
	return nil
}

func (e *Env) add(c testcontainers.Container) {
	if c == nil {
		return
	}
	e.mu.Lock()
	e.containers = append(e.containers, c)
	e.mu.Unlock()
}

// loopbackPorts publishes every port on 127.0.0.1 only: load and faults
// must never be reachable from outside the machine.
func loopbackPorts(ports ...string) testcontainers.CustomizeRequestOption {
	return testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
		if hc.PortBindings == nil {
			hc.PortBindings = dnetwork.PortMap{}
		}
		for _, p := range ports {
			hc.PortBindings[dnetwork.MustParsePort(p)] = []dnetwork.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1")}}
		}
	})
}

// cpuQuota limits a container to n cores (none when n is 0).
func cpuQuota(n float64) testcontainers.CustomizeRequestOption {
	return testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
		if n > 0 {
			hc.NanoCPUs = int64(n * 1e9)
		}
	})
}

func (e *Env) common(service string, aliases ...string) []testcontainers.ContainerCustomizer {
	return []testcontainers.ContainerCustomizer{
		testcontainers.WithLabels(Labels(e.RunID, service)),
		network.WithNetwork(aliases, e.net),
		testcontainers.WithName(e.RunID + "-" + service),
	}
}

func (e *Env) startDatabase(ctx context.Context, cfg *config) error {
	fmt.Fprintf(cfg.progress, "env: starting database (%s)\n", cfg.dbImage)
	dsn := func(host string, port dnetwork.Port) string {
		return fmt.Sprintf("%s:%s@tcp(%s:%s)/%s?timeout=2s", DBAdminUser, DBPassword, host, port.Port(), DBName)
	}
	adminPort := mariadbAdminPort
	if cfg.dbImage != MariaDBImage {
		adminPort = mysqlAdminPort
	}
	opts := append(e.common("mysql", "mysql"),
		// The database is thrown away with the run; on this engine's
		// fuse-overlayfs a data directory in the container layer makes
		// every write an I/O round trip through FUSE, which a drill would
		// measure instead of the database.
		testcontainers.WithTmpfs(map[string]string{"/var/lib/mysql": "rw,size=" + strconv.Itoa(cfg.dbTmpfsMB) + "m"}),
		testcontainers.WithExposedPorts("3306/tcp", adminPort),
		loopbackPorts("3306/tcp", adminPort),
		cpuQuota(cfg.dbCPUs),
		// SYS_NICE lets SetDBThreadNice give the harness's own sampling
		// thread its share of the CPU quota, as MySQL's resource groups
		// need it for THREAD_PRIORITY.
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.CapAdd = append(hc.CapAdd, "SYS_NICE")
		}),
		testcontainers.WithWaitStrategy(wait.ForSQL("3306/tcp", "mysql", dsn).
			WithQuery("SELECT 1").WithStartupTimeout(cfg.startup).WithPollInterval(250*time.Millisecond)),
	)
	if cfg.dbImage != MariaDBImage {
		// The official mysql image: root gets the same password, and the
		// database is created by its entrypoint.
		opts = append(opts, testcontainers.WithEnv(map[string]string{
			"MYSQL_ROOT_PASSWORD": DBPassword, "MYSQL_DATABASE": DBName, "MYSQL_ROOT_HOST": "%",
		}))
	}
	args := cfg.dbArgs
	if cfg.dbImage != MariaDBImage {
		args = append([]string{"--admin-address=0.0.0.0", "--admin-port=" + strings.TrimSuffix(mysqlAdminPort, "/tcp")}, args...)
	}
	if len(args) > 0 {
		opts = append(opts, testcontainers.WithCmdArgs(args...))
	}
	c, err := testcontainers.Run(ctx, cfg.dbImage, opts...)
	e.add(c)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	e.db = c
	port, err := c.MappedPort(ctx, "3306/tcp")
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	aport, err := c.MappedPort(ctx, adminPort)
	if err != nil {
		return fmt.Errorf("database: admin port: %w", err)
	}
	e.DB.Image = cfg.dbImage
	e.DB.DirectAddr = "127.0.0.1:" + port.Port()
	e.DB.AdminAddr = "127.0.0.1:" + aport.Port()
	e.DB.AdminDSN = fmt.Sprintf("%s:%s@tcp(%s)/%s", DBAdminUser, DBPassword, e.DB.AdminAddr, DBName)
	db, err := sql.Open("mysql", e.DB.AdminDSN)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&e.DB.Version); err != nil {
		return fmt.Errorf("database: version over the admin port: %w", err)
	}
	for _, q := range []string{
		"CREATE USER IF NOT EXISTS '" + DBUser + "'@'%' IDENTIFIED BY '" + DBPassword + "'",
		"GRANT " + trafficGrants + " ON *.* TO '" + DBUser + "'@'%'",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("database: traffic user: %w", err)
		}
	}
	e.DB.Flavor = "mysql"
	if strings.Contains(strings.ToLower(e.DB.Version), "mariadb") {
		e.DB.Flavor = "mariadb"
	}
	return nil
}

func (e *Env) startMemcached(ctx context.Context, cfg *config, name string, srv *Server) error {
	c, err := testcontainers.Run(ctx, MemcachedImage, append(e.common(name, name),
		testcontainers.WithExposedPorts("11211/tcp"),
		loopbackPorts("11211/tcp"),
		testcontainers.WithCmd("-m", strconv.Itoa(cfg.memcacheMB), "-c", "4096"),
		testcontainers.WithWaitStrategy(memcachedReady("11211/tcp").withTimeout(cfg.startup)),
	)...)
	e.add(c)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	port, err := c.MappedPort(ctx, "11211/tcp")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	srv.Name = name
	srv.DirectAddr = "127.0.0.1:" + port.Port()
	return nil
}

func (e *Env) startToxiproxy(ctx context.Context, cfg *config) error {
	ports := []string{fmt.Sprintf("%d/tcp", toxiproxyAPIPort), fmt.Sprintf("%d/tcp", toxiproxyMySQLPort)}
	for i := range cfg.memcached {
		ports = append(ports, fmt.Sprintf("%d/tcp", toxiproxyMemcachedAt+i))
	}
	for i := range cfg.tier {
		ports = append(ports, fmt.Sprintf("%d/tcp", toxiproxyTierAt+i))
	}
	c, err := testcontainers.Run(ctx, ToxiproxyImage, append(e.common("toxiproxy", "toxiproxy"),
		testcontainers.WithExposedPorts(ports...),
		loopbackPorts(ports...),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/version").WithPort(ports[0]).WithStartupTimeout(cfg.startup)),
	)...)
	e.add(c)
	if err != nil {
		return fmt.Errorf("toxiproxy: %w", err)
	}
	// Drill traffic goes to Toxiproxy's address on the run's network when
	// this host can open a connection there (its API listens from the
	// start); otherwise to the published ports. Only the proxied addresses
	// take this route: the API, the admin port and the direct addresses
	// carry a few requests a second, not the drill's traffic.
	e.Route = RoutePublished
	published := func(p int) (string, error) {
		mp, err := c.MappedPort(ctx, fmt.Sprintf("%d/tcp", p))
		if err != nil {
			return "", fmt.Errorf("toxiproxy: %w", err)
		}
		return "127.0.0.1:" + mp.Port(), nil
	}
	api, err := published(toxiproxyAPIPort)
	if err != nil {
		return err
	}
	e.ToxiproxyURL = "http://" + api
	proxied := published
	if ip := networkAddr(ctx, c, e.Network, e.progress); ip != "" {
		e.Route = RouteNetwork
		proxied = func(p int) (string, error) { return net.JoinHostPort(ip, strconv.Itoa(p)), nil }
	}
	if e.DB.ProxyAddr, err = proxied(toxiproxyMySQLPort); err != nil {
		return err
	}
	e.DB.Proxy = "mysql"
	e.DB.DSN = fmt.Sprintf("%s:%s@tcp(%s)/%s", DBUser, DBPassword, e.DB.ProxyAddr, DBName)
	for i := range cfg.memcached {
		if e.Memcached[i].ProxyAddr, err = proxied(toxiproxyMemcachedAt + i); err != nil {
			return err
		}
	}
	for i := range cfg.tier {
		if e.Tier[i].ProxyAddr, err = proxied(toxiproxyTierAt + i); err != nil {
			return err
		}
	}
	return nil
}

// networkAddr is c's address on the network named nw if this host can
// open a connection to its Toxiproxy API there, else "".
func networkAddr(ctx context.Context, c testcontainers.Container, nw string, progress io.Writer) string {
	inspect, err := c.Inspect(ctx)
	if err != nil {
		fmt.Fprintf(progress, "env: toxiproxy's address on the run's network: %v: traffic goes through its published ports\n", err)
		return ""
	}
	ep, ok := inspect.NetworkSettings.Networks[nw]
	if !ok || !ep.IPAddress.IsValid() {
		return ""
	}
	ip := ep.IPAddress.String()
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(toxiproxyAPIPort)))
	if err != nil {
		fmt.Fprintf(progress, "env: toxiproxy's address on the run's network is not reachable from this host (%v): traffic goes through its published ports\n", err)
		return ""
	}
	conn.Close()
	return ip
}

func (e *Env) createProxies(ctx context.Context) error {
	tp, err := toxiproxyClient(e.ToxiproxyURL)
	if err != nil {
		return err
	}
	if err := tp.CreateProxy(ctx, e.DB.Proxy, fmt.Sprintf("0.0.0.0:%d", toxiproxyMySQLPort), "mysql:3306"); err != nil {
		return err
	}
	for i := range e.Memcached {
		s := &e.Memcached[i]
		s.ListenPort = toxiproxyMemcachedAt + i
		if err := tp.CreateProxy(ctx, s.Name, fmt.Sprintf("0.0.0.0:%d", s.ListenPort), s.Name+":11211"); err != nil {
			return err
		}
	}
	for i := range e.Tier {
		s := &e.Tier[i]
		s.ListenPort = toxiproxyTierAt + i
		if err := tp.CreateProxy(ctx, s.Name, fmt.Sprintf("0.0.0.0:%d", s.ListenPort), s.Name+":11211"); err != nil {
			return err
		}
	}
	return nil
}

// checkThroughProxies proves the path clients use answers: a memcached
// version through every proxy and a query through the database proxy.
func (e *Env) checkThroughProxies(ctx context.Context) error {
	for _, s := range append(slices.Clone(e.Memcached), e.Tier...) {
		if _, err := MemcachedVersion(ctx, s.ProxyAddr); err != nil {
			return fmt.Errorf("%s through its proxy: %w", s.Name, err)
		}
	}
	db, err := sql.Open("mysql", e.DB.DSN)
	if err != nil {
		return fmt.Errorf("database through its proxy: %w", err)
	}
	defer db.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(cctx); err != nil {
		return fmt.Errorf("database through its proxy: %w", err)
	}
	return nil
}

// MemcachedVersion asks the memcached server at addr for its version.
func MemcachedVersion(ctx context.Context, addr string) (string, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("memcached version: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "version\r\n"); err != nil {
		return "", fmt.Errorf("memcached version: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("memcached version: %w", err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "VERSION ")
	if !ok {
		return "", fmt.Errorf("memcached version: unexpected reply %q", strings.TrimSpace(line))
	}
	return v, nil
}

// Vars are the endpoints as FIREDRILL_* environment variables, the interface
// between the harness and k6 scripts and extensions.
func (e *Env) Vars() []string {
	var proxied, direct, names []string
	for _, s := range e.Memcached {
		proxied = append(proxied, s.ProxyAddr)
		direct = append(direct, s.DirectAddr)
		names = append(names, s.Name)
	}
	vars := []string{
		envvar.RunID + "=" + e.RunID,
		envvar.Memcached + "=" + strings.Join(proxied, ","),
		envvar.MemcachedProxies + "=" + strings.Join(names, ","),
		envvar.MemcachedDirect + "=" + strings.Join(direct, ","),
		envvar.MySQLDSN + "=" + e.DB.DSN,
		envvar.MySQLProxy + "=" + e.DB.Proxy,
		envvar.MySQLAdminDSN + "=" + e.DB.AdminDSN,
		envvar.DBFlavor + "=" + e.DB.Flavor,
		envvar.Toxiproxy + "=" + e.ToxiproxyURL,
	}
	if len(e.Tier) > 0 {
		var tp, td, tn []string
		for _, s := range e.Tier {
			tp, td, tn = append(tp, s.ProxyAddr), append(td, s.DirectAddr), append(tn, s.Name)
		}
		vars = append(vars, envvar.Tier+"="+strings.Join(tp, ","), envvar.TierProxies+"="+strings.Join(tn, ","),
			envvar.TierDirect+"="+strings.Join(td, ","))
	}
	return vars
}

// Down removes every container and the network of this environment. It is
// safe to call on a partial environment and more than once.
func (e *Env) Down(ctx context.Context) error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	cs := e.containers
	e.containers = nil
	nw := e.net
	e.net = nil
	e.mu.Unlock()
	var errs []error
	for _, c := range cs {
		if err := testcontainers.TerminateContainer(c, testcontainers.StopTimeout(0)); err != nil {
			errs = append(errs, err)
		}
	}
	if nw != nil {
		if err := nw.Remove(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// Whatever testcontainers lost track of (a container created but never
	// returned), the run label still finds.
	if _, err := RemoveRun(ctx, e.RunID); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("environment down: %w", errors.Join(errs...))
	}
	return nil
}
