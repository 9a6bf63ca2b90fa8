package runpool

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Config holds the settings of a [Pool] that do not depend on the driver.
// The zero value is usable: every zero field takes the default named in
// its comment, chosen for an instance that a serverless platform freezes
// between requests behind a NAT that forgets idle flows. [ConfigFromEnv]
// fills it from RUNPOOL_* variables; an explicit field set in code before
// calling it wins only where the variable is unset.
type Config struct {
	// Name labels the pool in metrics (db.client.connection.pool.name) and
	// logs. Default "runpool".
	Name string

	// MaxConns is the most connections this instance may hold, open or
	// opening. Zero means derive it from the budget (see Budget); with no
	// budget either, max(4, GOMAXPROCS) as pgxpool does.
	MaxConns int32
	// MinConns is the idle floor the maintainer keeps open. Default 0:
	// on a platform that freezes idle instances a warm floor mostly buys
	// stale connections.
	MinConns int32
	// MinIdleConns is the idle count the maintainer keeps, as pgxpool's
	// MinIdleConns: it opens connections (within MaxConns) while fewer
	// are idle. Default 0, for the reason MinConns is.
	MinIdleConns int32
	// MaxConcurrentDials caps dials in flight at once, so a cold start or a
	// burst does not open MaxConns connections in one go. Default 2.
	MaxConcurrentDials int32
	// DialTimeout bounds one connection attempt, TLS and authentication
	// included. Default 5s.
	DialTimeout time.Duration
	// ServerAwayTimeout is how long a caller of Acquire waits, at most, for
	// a server that refuses connections for a moment (a restart, a
	// failover, recovery after a crash; see serveraway.go), dialing again
	// with backoff; the caller's deadline comes first when sooner. Default
	// 30s; negative: not at all (the first refused dial fails the caller).
	ServerAwayTimeout time.Duration
	// AcquireTimeout bounds the wait for a connection in Acquire, apart
	// from the caller's deadline: past it Acquire fails with an
	// *AcquireTimeoutError (errors.Is ErrAcquireTimeout) that says what
	// the pool was waiting for. It bounds only the wait: the work done on
	// the connection afterwards runs under the caller's context alone.
	// Default 0: no bound beyond the caller's context.
	AcquireTimeout time.Duration

	// MaxConnIdleTime closes a connection idle this long. It must stay below
	// the idle timeout of every middlebox on the path (Fly's proxy: about
	// 60 s). Default 45s.
	MaxConnIdleTime time.Duration
	// MaxConnLifetime closes a connection this old when it is next idle.
	// Default 30m.
	MaxConnLifetime time.Duration
	// MaxConnLifetimeJitter spreads lifetimes uniformly over
	// [MaxConnLifetime, MaxConnLifetime+Jitter) so connections opened
	// together are not all replaced together. Default MaxConnLifetime/10;
	// negative means none.
	MaxConnLifetimeJitter time.Duration
	// MaintainInterval is how often the single background maintainer runs:
	// idle and lifetime expiry, the MinConns floor and freeze detection.
	// Default 1s.
	MaintainInterval time.Duration

	// ProbeAfterIdle: a connection idle longer than this is probed before
	// it is handed out. Default 1s.
	ProbeAfterIdle time.Duration
	// ProbeTimeout caps the dial-time part of a probe's deadline,
	// whatever the caller's deadline. The deadline is the typical dial
	// time (at least 5ms) within this cap, so a connection slower to
	// answer than a fresh one is to open is replaced; but never less than
	// four round trips of the path as probes measure it, so that on a
	// distant server a healthy connection is not failed. Default 250ms.
	ProbeTimeout time.Duration
	// PingTimeout, when set, is a hard cap on a probe's deadline, as
	// pgxpool's PingTimeout: a connection that does not answer within it
	// is replaced, even on a path whose round trips are longer (the
	// deadline's floor of four round trips gives way). Default 0: none.
	PingTimeout time.Duration
	// FreezeThreshold: the maintainer reports a freeze when its clock jumps
	// this much past a tick. Default 1s.
	FreezeThreshold time.Duration
	// PathIdleTimeout is the idle timeout of the tightest middlebox on the
	// path to the server, when known. After a freeze longer than it, idle
	// connections are discarded without a probe. Default 0 (unknown:
	// probe them instead).
	PathIdleTimeout time.Duration

	// TCPKeepAliveIdle, TCPKeepAliveInterval and TCPKeepAliveCount set the
	// client socket's kernel keepalives, which the kernel sends even while
	// the process is frozen. Defaults 15s, 5s, 3.
	TCPKeepAliveIdle     time.Duration
	TCPKeepAliveInterval time.Duration
	TCPKeepAliveCount    int
	// TCPUserTimeout makes a write into a black hole fail after this long
	// (Linux TCP_USER_TIMEOUT). Default 20s; negative disables.
	TCPUserTimeout time.Duration

	// ServerKeepAliveIdle asks the server's kernel to probe an idle client
	// after this long and end the session when three probes (a third of it
	// apart) go unanswered, so a backend whose client vanished behind a NAT
	// frees its slot. Default 30s; negative disables. See docs/server-reclaim.md.
	ServerKeepAliveIdle time.Duration
	// ServerIdleSessionTimeout asks the server (PostgreSQL 14+) to end a
	// session idle this long. It must exceed MaxConnIdleTime. Default 0:
	// off (negative too). Opt in only when no caller holds a connection
	// idle this long: the server ends connections in use too (a LISTEN
	// loop, a connection held across a slow call) with FATAL 57P05. See
	// docs/server-reclaim.md.
	ServerIdleSessionTimeout time.Duration

	// Budget is the number of server connections the whole service may use,
	// all instances together. Zero means read it from the server at start.
	Budget int
	// MaxInstances is the platform's maximum instance count. Default 1.
	MaxInstances int
	// Reserve is kept out of the budget for migrations and admin sessions.
	// Default 0.
	Reserve int
	// Platform overrides platform detection: cloudrun, cloudrun-job,
	// lambda, knative, fly, azure-container-apps or none. Default: detect.
	Platform string
	// Concurrency is the most requests one instance serves at once (Cloud
	// Run's concurrency setting); MaxConns never exceeds it. Default: the
	// platform's (Lambda: 1), else unbounded.
	Concurrency int
	// BudgetCheck is what happens at start when the budget exceeds what
	// the server allows: "warn" (default), "error" or "off" (do not read
	// the server's limits at all).
	BudgetCheck string
	// BudgetSlots makes the database enforce the budget on any server:
	// "advisory" has every connection hold one of Budget-Reserve session
	// advisory locks in a key space derived from Name, the role and the
	// database, so that the instances together never exceed it and a busy
	// instance may borrow what idle ones leave (see docs/budget.md). It
	// needs Budget and session-mode connections (no Pooler). Default
	// "off": the division alone keeps the total within the budget.
	BudgetSlots string

	// DrainTimeout bounds the drain that Close runs and the whole shutdown
	// that serve.HTTP runs. Default: the platform's grace period less a
	// fifth (at least 100ms) for the process to exit (Cloud Run: 10s ->
	// 8s); 8s where no platform is detected.
	DrainTimeout time.Duration

	// Pooler says what is in front of the server: "none" or "pgbouncer"
	// (any transaction-mode pooler: PgBouncer, Cloud SQL managed pooling,
	// Supavisor, RDS Proxy). Behind one, statements do not rely on
	// server-side prepared statements, no session settings are sent, and
	// the budget is the pooler's client limit (see pooler.go). Default:
	// none (port 6432 only draws a hint in the log).
	Pooler string

	// Logger receives the pool's events. Default slog.Default().
	Logger *slog.Logger
	// MeterProvider receives the pool's metrics. Default: the global one.
	MeterProvider metric.MeterProvider
}

// Defaults used where a Config field is zero.
const (
	defaultName                = "runpool"
	defaultMaxConcurrentDials  = 2
	defaultDialTimeout         = 5 * time.Second
	defaultServerAwayTimeout   = 30 * time.Second // a restart, most managed failovers; HikariCP's connection timeout
	defaultMaxConnIdleTime     = 45 * time.Second
	defaultMaxConnLifetime     = 30 * time.Minute
	defaultMaintainInterval    = time.Second
	defaultProbeAfterIdle      = time.Second
	defaultProbeTimeout        = 250 * time.Millisecond
	defaultFreezeThreshold     = time.Second
	defaultKeepAliveIdle       = 15 * time.Second
	defaultKeepAliveInterval   = 5 * time.Second
	defaultKeepAliveCount      = 3
	defaultTCPUserTimeout      = 20 * time.Second
	defaultServerKeepAliveIdle = 30 * time.Second
)

// withDefaults returns a copy of c with every zero field set to its
// default. It does not size the pool: resolve does.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = defaultName
	}
	if c.MaxConcurrentDials == 0 {
		c.MaxConcurrentDials = defaultMaxConcurrentDials
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.ServerAwayTimeout == 0 {
		c.ServerAwayTimeout = defaultServerAwayTimeout
	}
	if c.MaxConnIdleTime == 0 {
		c.MaxConnIdleTime = defaultMaxConnIdleTime
	}
	if c.MaxConnLifetime == 0 {
		c.MaxConnLifetime = defaultMaxConnLifetime
	}
	if c.MaxConnLifetimeJitter == 0 {
		c.MaxConnLifetimeJitter = c.MaxConnLifetime / 10
	}
	if c.MaintainInterval == 0 {
		c.MaintainInterval = defaultMaintainInterval
	}
	if c.ProbeAfterIdle == 0 {
		c.ProbeAfterIdle = defaultProbeAfterIdle
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = defaultProbeTimeout
	}
	if c.FreezeThreshold == 0 {
		c.FreezeThreshold = defaultFreezeThreshold
	}
	if c.TCPKeepAliveIdle == 0 {
		c.TCPKeepAliveIdle = defaultKeepAliveIdle
	}
	if c.TCPKeepAliveInterval == 0 {
		c.TCPKeepAliveInterval = defaultKeepAliveInterval
	}
	if c.TCPKeepAliveCount == 0 {
		c.TCPKeepAliveCount = defaultKeepAliveCount
	}
	if c.TCPUserTimeout == 0 {
		c.TCPUserTimeout = defaultTCPUserTimeout
	}
	if c.ServerKeepAliveIdle == 0 {
		c.ServerKeepAliveIdle = defaultServerKeepAliveIdle
	}
	if c.MaxInstances == 0 {
		c.MaxInstances = 1
	}
	if c.BudgetCheck == "" {
		c.BudgetCheck = BudgetCheckWarn
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field whose value cannot work, naming it:
// a number outside its range (the table in limits.go), or settings that
// contradict each other.
func (c Config) Validate() error {
	for i := range limits {
		if err := limits[i].check(&c); err != nil {
			return err
		}
	}
	if err := c.validateSlots(); err != nil {
		return err
	}
	idle := c.MaxConnIdleTime
	if idle == 0 {
		idle = defaultMaxConnIdleTime
	}
	switch {
	case c.MaxConns > 0 && c.MinConns > c.MaxConns:
		return fieldError("MinConns", c.MinConns, fmt.Sprintf("must not exceed MaxConns (%d)", c.MaxConns))
	case c.MaxConns > 0 && c.MinIdleConns > c.MaxConns:
		return fieldError("MinIdleConns", c.MinIdleConns, fmt.Sprintf("must not exceed MaxConns (%d)", c.MaxConns))
	case c.ServerIdleSessionTimeout > 0 && c.ServerIdleSessionTimeout <= idle:
		return fieldError("ServerIdleSessionTimeout", c.ServerIdleSessionTimeout,
			fmt.Sprintf("must exceed MaxConnIdleTime (%v), or the server ends sessions the pool still keeps", idle))
	case c.Budget > 0 && c.Reserve >= c.Budget:
		return fieldError("Reserve", c.Reserve, fmt.Sprintf("must be less than Budget (%d)", c.Budget))
	case c.BudgetCheck != "" && c.BudgetCheck != BudgetCheckWarn && c.BudgetCheck != BudgetCheckError && c.BudgetCheck != BudgetCheckOff:
		return fieldError("BudgetCheck", c.BudgetCheck, "must be warn, error or off")
	case c.Pooler != "" && c.Pooler != PoolerNone && c.Pooler != PoolerPgBouncer:
		return fieldError("Pooler", c.Pooler, "must be none or pgbouncer")
	}
	return nil
}

// ConfigError names the setting at fault: a Config field or, when the value
// came from the environment, the variable.
type ConfigError struct {
	Setting string // "Config.MaxConns" or "RUNPOOL_MAX_CONNS"
	Value   string // the offending value; never a password
	Problem string
}

func (e *ConfigError) Error() string {
	if e.Value == "" {
		return "runpool: " + e.Setting + ": " + e.Problem
	}
	return fmt.Sprintf("runpool: %s=%q: %s", e.Setting, e.Value, e.Problem)
}

func fieldError(field string, v any, problem string) error {
	return &ConfigError{Setting: "Config." + field, Value: fmt.Sprint(v), Problem: problem}
}
