package runpool

import (
	"os"
	"strings"
)

// EnvVar describes one RUNPOOL_* variable: the table of variables in
// docs/configuration.md is checked against this list by a test, so the
// two cannot drift.
type EnvVar struct {
	Name    string // RUNPOOL_...
	Unit    string // "duration", "connections", "count", "name"
	Default string // as docs/configuration.md shows it
	Doc     string
	set     func(c *Config, v string) error // nil: a number, parsed and bounded by its limit (limits.go)
}

// EnvVars lists every RUNPOOL_* variable that ConfigFromEnv reads.
func EnvVars() []EnvVar { return envVars }

var envVars = []EnvVar{
	{"RUNPOOL_POOL_NAME", "name", "runpool", "pool name in metrics and logs", setString(func(c *Config) *string { return &c.Name })},
	{"RUNPOOL_MAX_CONNS", "connections", "derived from the budget", "most connections this instance may hold", nil},
	{"RUNPOOL_MIN_CONNS", "connections", "0", "idle floor kept open", nil},
	{"RUNPOOL_MIN_IDLE_CONNS", "connections", "0", "idle connections kept open (pgxpool's MinIdleConns)", nil},
	{"RUNPOOL_MAX_CONCURRENT_DIALS", "count", "2", "dials in flight at once", nil},
	{"RUNPOOL_DIAL_TIMEOUT", "duration", "5s", "bound on one connection attempt", nil},
	{"RUNPOOL_ACQUIRE_TIMEOUT", "duration", "unset", "bound on the wait for a connection, apart from the query's deadline; unset: the caller's context alone", nil},
	{"RUNPOOL_SERVER_AWAY_TIMEOUT", "duration", "30s", "how long a caller waits for a server that refuses connections for a moment (restart, failover); off: not at all", nil},
	{"RUNPOOL_MAX_CONN_IDLE_TIME", "duration", "45s", "close connections idle this long", nil},
	{"RUNPOOL_MAX_CONN_LIFETIME", "duration", "30m", "close connections this old", nil},
	{"RUNPOOL_MAX_CONN_LIFETIME_JITTER", "duration", "lifetime/10", "random extra lifetime per connection; off: none", nil},
	{"RUNPOOL_MAINTAIN_INTERVAL", "duration", "1s", "background maintainer period", nil},
	{"RUNPOOL_PROBE_AFTER_IDLE", "duration", "1s", "probe connections idle longer than this on checkout", nil},
	{"RUNPOOL_PROBE_TIMEOUT", "duration", "250ms", "cap on a checkout probe's dial-time deadline (never below four measured round trips)", nil},
	{"RUNPOOL_PING_TIMEOUT", "duration", "unset", "hard cap on a checkout probe's deadline, even below four round trips (pgxpool's PingTimeout)", nil},
	{"RUNPOOL_FREEZE_THRESHOLD", "duration", "1s", "clock jump that counts as a freeze", nil},
	{"RUNPOOL_PATH_IDLE_TIMEOUT", "duration", "unset", "tightest middlebox idle timeout on the path", nil},
	{"RUNPOOL_TCP_KEEPALIVE_IDLE", "duration", "15s", "kernel keepalive idle time", nil},
	{"RUNPOOL_TCP_KEEPALIVE_INTERVAL", "duration", "5s", "kernel keepalive interval", nil},
	{"RUNPOOL_TCP_KEEPALIVE_COUNT", "count", "3", "kernel keepalive probes before the socket fails", nil},
	{"RUNPOOL_TCP_USER_TIMEOUT", "duration", "20s", "unacknowledged data older than this fails the socket; off: the kernel's default", nil},
	{"RUNPOOL_SERVER_KEEPALIVE_IDLE", "duration", "30s", "server-side keepalive on each session, so a vanished client's backend ends; off: none", nil},
	{"RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT", "duration", "off", "server ends sessions idle this long, ones in use too (PostgreSQL 14+); must exceed the idle time; see docs/server-reclaim.md", nil},
	{"RUNPOOL_BUDGET", "connections", "read from the server", "connections the whole service may use, all instances together", nil},
	{"RUNPOOL_MAX_INSTANCES", "count", "1", "the platform's maximum instance count", nil},
	{"RUNPOOL_RESERVE", "connections", "0", "kept out of the budget for admin work", nil},
	{"RUNPOOL_CONCURRENCY", "count", "from the platform", "most requests one instance serves at once; caps the connections", nil},
	{"RUNPOOL_BUDGET_CHECK", "name", "warn", "warn, error or off: what the start-up check does when the budget exceeds the server's limit", setBudgetCheck},
	{"RUNPOOL_BUDGET_SLOTS", "name", "off", "off or advisory: every connection holds one of budget-reserve advisory locks, so the database enforces the budget and busy instances borrow what idle ones leave; needs RUNPOOL_BUDGET, no pooler", setBudgetSlots},
	{"RUNPOOL_PLATFORM", "name", "detected", "cloudrun, cloudrun-job, lambda, knative, fly, azure-container-apps or none", setPlatform},
	{"RUNPOOL_POOLER", "name", "none", "none or pgbouncer: a transaction-mode pooler is in front (no named prepared statements, no session settings, budget = its client limit)", setPooler},
	{"RUNPOOL_DRAIN_TIMEOUT", "duration", "from the platform", "bound on the drain at shutdown", nil},
}

// ConfigFromEnv returns base with every RUNPOOL_* variable that is set
// applied over it. A bad value is a *ConfigError naming the variable.
func ConfigFromEnv(base Config) (Config, error) {
	return configFromLookup(base, os.LookupEnv)
}

func configFromLookup(c Config, lookup func(string) (string, bool)) (Config, error) {
	for _, ev := range envVars {
		v, ok := lookup(ev.Name)
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		set := ev.set
		if set == nil {
			set = limitFor(ev.Name).parse
		}
		if err := set(&c, v); err != nil {
			return c, &ConfigError{Setting: ev.Name, Value: v, Problem: err.Error()}
		}
	}
	return c, nil
}

type problem string

func (p problem) Error() string { return string(p) }

func setString(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

// platformNames lists the values RUNPOOL_PLATFORM and Config.Platform
// accept, in the order error messages give them.
var platformNames = []string{"cloudrun", "cloudrun-job", "lambda", "knative", "fly", "azure-container-apps", "none"}

func setPlatform(c *Config, v string) error {
	v = strings.ToLower(v)
	for _, p := range platformNames {
		if v == p {
			c.Platform = v
			return nil
		}
	}
	return problem("unknown platform (want one of " + strings.Join(platformNames, ", ") + ")")
}

func setBudgetCheck(c *Config, v string) error {
	switch v = strings.ToLower(v); v {
	case BudgetCheckWarn, BudgetCheckError, BudgetCheckOff:
		c.BudgetCheck = v
		return nil
	}
	return problem("must be warn, error or off")
}
