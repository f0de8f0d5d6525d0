package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/format"
)

// config is the service's whole configuration, read from its environment
// (twelve-factor style, as a team's service would be). Every protection
// is a setting, so one image can run with protections on or off; the
// release baked into the image (APP_RELEASE, a build argument) picks the
// defaults of the settings not given.
type config struct {
	Release string
	Listen  string
	DSN     string
	Servers []string
	Table   string

	Format      format.Version // the cache format this release writes and reads
	CompatRead  bool           // also read the other format (dual read)
	Calls       int            // cache calls per request
	CallTimeout time.Duration  // each cache call's read/write timeout
	DialTimeout time.Duration  // connecting to a cache server
	Breaker     int            // consecutive failures that open a server's breaker; 0: none
	Cooldown    time.Duration  // how long an open breaker fails calls before it lets one through
	Coalesce    bool           // one fill per key at a time in this process
	TTL         time.Duration  // cache entries' TTL
	TTLJitter   float64        // fraction of the TTL taken off at random
	IdleConns   int            // idle connections kept per cache server

	DBTimeout  time.Duration // each query's timeout; 0: none
	DBMaxConns int           // open database connections at most
	// OneRead fills a request's missing parts with one read of the item,
	// in one round trip, instead of one prepared query per part: on a
	// slow database a cold request then waits one round trip, not
	// 2 x CACHE_CALLS of them.
	OneRead bool
	// WarmPool opens DB_MAX_CONNS connections before the service reports
	// healthy and keeps them idle: a pool that must grow while the
	// database is slow dials under the query's timeout, and a handshake
	// of several slow round trips outlives it, so the pool never grows.
	WarmPool bool

	Workers      int           // requests served at once
	Queue        int           // requests waiting for a worker at most; more are shed (503)
	QueueTimeout time.Duration // how long a request waits for a worker before it is shed
	Budget       time.Duration // a request's whole time budget; 0: none

	// A second cache tier (incident 004's new shared cache), called
	// TierCalls times per request after the item is read; none when Tier
	// is empty. Its calls are best effort: a failure is counted, never
	// the request's.
	Tier               []string
	TierCalls          int
	TierTimeout        time.Duration // each call's read/write timeout
	TierConnectTimeout time.Duration // connecting to a tier server
	TierBreaker        int           // consecutive failures that open a tier server's breaker; 0: none
	// TierFlag is a feature flag in front of the tier: the first call that
	// cannot reach it turns it off for the process, and a probe once a
	// second turns it on again when the tier answers.
	TierFlag bool
}

// releaseDefaults are the two releases of the example: v1 runs with its
// protections on; v2 is the regression incident 004 describes (a 2 s
// cache timeout, no breaker, no request budget) and also moves to the
// Rails 7.0 cache format, incident 000's change.
var releaseDefaults = map[string]map[string]string{
	"v1": {
		"CACHE_FORMAT": "6.1", "CACHE_TIMEOUT": "100ms", "CACHE_CONNECT_TIMEOUT": "50ms", "CACHE_BREAKER": "5",
		"CACHE_COALESCE": "true", "DB_TIMEOUT": "500ms", "DB_ONE_READ": "true", "DB_WARM_POOL": "true", "REQUEST_BUDGET": "1s",
		"TIER_TIMEOUT": "100ms", "TIER_CONNECT_TIMEOUT": "50ms", "TIER_BREAKER": "5", "TIER_FLAG": "true",
	},
	"v2": {
		"CACHE_FORMAT": "7.0", "CACHE_TIMEOUT": "2s", "CACHE_CONNECT_TIMEOUT": "2s", "CACHE_BREAKER": "0",
		"CACHE_COALESCE": "false", "DB_TIMEOUT": "0", "DB_ONE_READ": "false", "DB_WARM_POOL": "false", "REQUEST_BUDGET": "0",
		"TIER_TIMEOUT": "2s", "TIER_CONNECT_TIMEOUT": "2s", "TIER_BREAKER": "0", "TIER_FLAG": "false",
	},
}

// common are the defaults of both releases.
var common = map[string]string{
	"LISTEN": ":8080", "TABLE": "items", "CACHE_COMPAT_READ": "false", "CACHE_CALLS": "15",
	"CACHE_BREAKER_COOLDOWN": "2s", "CACHE_TTL": "300s", "CACHE_TTL_JITTER": "0", "CACHE_IDLE_CONNS": "64",
	"DB_MAX_CONNS": "16", "WORKERS": "32", "QUEUE": "64", "QUEUE_TIMEOUT": "1s", "TIER_CALLS": "15",
}

// loadConfig reads the configuration through getenv; every error names
// the variable at fault.
func loadConfig(getenv func(string) string) (config, error) {
	rel := getenv("APP_RELEASE")
	if rel == "" {
		rel = "v1"
	}
	defs, ok := releaseDefaults[rel]
	if !ok {
		return config{}, fmt.Errorf("APP_RELEASE=%q: want v1 or v2", rel)
	}
	get := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		if v, ok := defs[name]; ok {
			return v
		}
		return common[name]
	}
	var errs []string
	dur := func(name string) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil || d < 0 {
			errs = append(errs, fmt.Sprintf("%s=%q: want a duration such as 100ms or 2s", name, get(name)))
		}
		return d
	}
	num := func(name string, lo int) int {
		n, err := strconv.Atoi(get(name))
		if err != nil || n < lo {
			errs = append(errs, fmt.Sprintf("%s=%q: want an integer >= %d", name, get(name), lo))
		}
		return n
	}
	flag := func(name string) bool {
		b, err := strconv.ParseBool(get(name))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: want true or false", name, get(name)))
		}
		return b
	}
	c := config{
		Release: rel, Listen: get("LISTEN"), DSN: getenv("DB_DSN"), Table: get("TABLE"),
		CompatRead: flag("CACHE_COMPAT_READ"), Calls: num("CACHE_CALLS", 1),
		CallTimeout: dur("CACHE_TIMEOUT"), DialTimeout: dur("CACHE_CONNECT_TIMEOUT"),
		Breaker: num("CACHE_BREAKER", 0), Cooldown: dur("CACHE_BREAKER_COOLDOWN"), Coalesce: flag("CACHE_COALESCE"),
		TTL: dur("CACHE_TTL"), IdleConns: num("CACHE_IDLE_CONNS", 1),
		DBTimeout: dur("DB_TIMEOUT"), DBMaxConns: num("DB_MAX_CONNS", 1), OneRead: flag("DB_ONE_READ"),
		WarmPool: flag("DB_WARM_POOL"),
		Workers:  num("WORKERS", 1), Queue: num("QUEUE", 0), QueueTimeout: dur("QUEUE_TIMEOUT"), Budget: dur("REQUEST_BUDGET"),
		TierCalls: num("TIER_CALLS", 1), TierTimeout: dur("TIER_TIMEOUT"), TierConnectTimeout: dur("TIER_CONNECT_TIMEOUT"),
		TierBreaker: num("TIER_BREAKER", 0), TierFlag: flag("TIER_FLAG"),
	}
	for _, s := range strings.Split(getenv("TIER"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Tier = append(c.Tier, s)
		}
	}
	for _, s := range strings.Split(getenv("MEMCACHED"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Servers = append(c.Servers, s)
		}
	}
	if len(c.Servers) == 0 {
		errs = append(errs, "MEMCACHED is empty: want host:port[,host:port...]")
	}
	if c.DSN == "" {
		errs = append(errs, "DB_DSN is empty: want a go-sql-driver DSN such as user:pw@tcp(host:3306)/db")
	}
	v, err := format.Parse(get("CACHE_FORMAT"))
	if err != nil {
		errs = append(errs, fmt.Sprintf("CACHE_FORMAT=%q: want 6.1 or 7.0", get("CACHE_FORMAT")))
	}
	c.Format = v
	j, err := strconv.ParseFloat(get("CACHE_TTL_JITTER"), 64)
	if err != nil || j < 0 || j >= 1 {
		errs = append(errs, fmt.Sprintf("CACHE_TTL_JITTER=%q: want a fraction in [0, 1)", get("CACHE_TTL_JITTER")))
	}
	c.TTLJitter = j
	if c.TTL < time.Second {
		errs = append(errs, fmt.Sprintf("CACHE_TTL=%q: want at least 1s (memcached counts whole seconds)", get("CACHE_TTL")))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("config: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// String is the configuration as the log's first line shows it.
func (c config) String() string {
	tier := "no tier"
	if len(c.Tier) > 0 {
		tier = fmt.Sprintf("tier %d servers, %d calls/request, timeout %s (connect %s), breaker %d, flag %t",
			len(c.Tier), c.TierCalls, c.TierTimeout, c.TierConnectTimeout, c.TierBreaker, c.TierFlag)
	}
	return fmt.Sprintf("release %s, format %s (compat read %t), %d cache calls/request, cache timeout %s (connect %s), breaker %d (cooldown %s), coalesce %t, ttl %s (jitter %.2f), db timeout %s (max %d conns, one read %t, warm pool %t), %d workers, queue %d (%s), budget %s, %s",
		c.Release, c.Format, c.CompatRead, c.Calls, c.CallTimeout, c.DialTimeout, c.Breaker, c.Cooldown, c.Coalesce, c.TTL, c.TTLJitter,
		c.DBTimeout, c.DBMaxConns, c.OneRead, c.WarmPool, c.Workers, c.Queue, c.QueueTimeout, c.Budget, tier)
}
