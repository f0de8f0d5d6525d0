// Package envvar is the contract between firedrill's harness and a
// drill's k6 process: every FIREDRILL_* variable, what it holds, and one
// way to read them. The harness sets them (environments.Env.Vars,
// harness.ScriptVars); the k6 extensions read them through k6's own
// lookup, which also sees `k6 run -e NAME=value`; plain-Go packages read
// them through a Lookup they are given, os.LookupEnv by default.
package envvar

import "os"

// The variables.
const (
	// RunID names the run; every container carries it as a label.
	RunID = "FIREDRILL_RUN_ID"
	// Memcached are the memcached servers through their Toxiproxy proxies,
	// comma-separated, in server order: where traffic goes.
	Memcached = "FIREDRILL_MEMCACHED"
	// MemcachedProxies are the proxies' names in the same order.
	MemcachedProxies = "FIREDRILL_MEMCACHED_PROXIES"
	// MemcachedDirect are the servers without their proxies, for steering
	// and checks, never traffic.
	MemcachedDirect = "FIREDRILL_MEMCACHED_DIRECT"
	// Tier are the servers of a second cache tier (a drill's @tier) through
	// their Toxiproxy proxies, comma-separated: what a request calls.
	Tier = "FIREDRILL_TIER"
	// TierProxies are the tier proxies' names in the same order.
	TierProxies = "FIREDRILL_TIER_PROXIES"
	// TierDirect are the tier's servers without their proxies, for checks.
	TierDirect = "FIREDRILL_TIER_DIRECT"
	// MySQLDSN is the Go MySQL DSN through the database's proxy, as the
	// traffic user.
	MySQLDSN = "FIREDRILL_MYSQL_DSN"
	// MySQLProxy is the database proxy's name.
	MySQLProxy = "FIREDRILL_MYSQL_PROXY"
	// MySQLAdminDSN is the direct DSN over the database's admin port, as
	// root: seeding, faults, checks.
	MySQLAdminDSN = "FIREDRILL_MYSQL_ADMIN_DSN"
	// DBFlavor is mariadb or mysql.
	DBFlavor = "FIREDRILL_DB_FLAVOR"
	// DBCPUs is the database container's CPU quota in cores (0: none),
	// set before the drill's checks are read, so a check can judge the
	// database's CPU as a share of its quota.
	DBCPUs = "FIREDRILL_DB_CPUS"
	// Toxiproxy is Toxiproxy's API URL.
	Toxiproxy = "FIREDRILL_TOXIPROXY"
	// Profile is the profile the drill runs in.
	Profile = "FIREDRILL_PROFILE"
	// Seed is the drill's random seed.
	Seed = "FIREDRILL_SEED"
	// Generator is this k6 process's index among Generators (local
	// --generators runs only).
	Generator = "FIREDRILL_GENERATOR"
	// Generators is the number of k6 processes driving the load.
	Generators = "FIREDRILL_GENERATORS"
	// AppURL is the base URL (http://127.0.0.1:PORT) of the service under
	// test, for drills that drive one: its only release, or the head
	// release when two run side by side.
	AppURL = "FIREDRILL_APP_URL"
	// AppBaseURL and AppHeadURL are the two releases' URLs when the run
	// has both (--app base=IMAGE --app head=IMAGE), for a rolling deploy.
	AppBaseURL = "FIREDRILL_APP_BASE_URL"
	AppHeadURL = "FIREDRILL_APP_HEAD_URL"
	// HDROut is where the traffic engine appends its ledger (NDJSON).
	HDROut = "FIREDRILL_HDR_OUT"
	// OutDir is the run's results folder.
	OutDir = "FIREDRILL_OUT_DIR"
	// Debug, when set, brings back testcontainers' own log.
	Debug = "FIREDRILL_DEBUG"
	// Params carries every resolved drill parameter as one JSON object,
	// which param() in scenarios/lib/firedrill.js reads.
	Params = "FIREDRILL_PARAMS"
	// ParamPrefix starts the variable of each drill parameter:
	// FIREDRILL_<NAME>, the name upper-cased, dashes as underscores.
	ParamPrefix = "FIREDRILL_"
)

// Lookup reads one variable, as os.LookupEnv does.
type Lookup func(name string) (string, bool)

// OS reads the process's environment.
func OS(name string) (string, bool) { return os.LookupEnv(name) }

// Get is the variable's value, "" when it is unset or l is nil.
func (l Lookup) Get(name string) string {
	if l == nil {
		return ""
	}
	v, _ := l(name)
	return v
}
