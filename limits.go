package runpool

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// The bounds of every numeric setting, in one table. Validate checks a
// Config field against it and names the field; ConfigFromEnv checks a
// variable's value and names the variable; docs/configuration.md lists
// it (a test keeps the page in step). A value outside its range does not
// fail at once but quietly breaks the pool: a 1ns maintainer interval
// spins a core, a 1ns probe timeout fails every probe, a lifetime near
// the int64 limit overflows the expiry so every connection expires at
// once, a TCP_USER_TIMEOUT beyond 32 bits of milliseconds is truncated.
//
// In a Config, zero means the default and is always accepted. From the
// environment zero is a value like any other (unset the variable for the
// default), accepted only where the range starts at 0.

// A limit bounds one numeric setting.
type limit struct {
	field    string // Config field
	env      string // RUNPOOL_* variable
	min, max int64  // allowed range of a value that is set; nanoseconds for a duration
	off      bool   // a negative value (the environment's "off") disables the setting
	duration bool
	get      func(*Config) int64
	set      func(*Config, int64)
}

// maxBackends is PostgreSQL's own ceiling on max_connections.
const maxBackends = 1<<18 - 1

// maxCount bounds the service-wide counts (a pooler's client limit may
// exceed any one server's backends).
const maxCount = 1 << 20

// maxKernelKeepAlive is Linux's ceiling on TCP_KEEPIDLE and TCP_KEEPINTVL
// (seconds), on the client's kernel and the server's alike.
const maxKernelKeepAlive = 32767 * time.Second

// maxLifetime keeps a connection's expiry (the monotonic clock plus
// lifetime plus jitter) far from overflowing int64.
const maxLifetime = 30 * 24 * time.Hour

var limits = []limit{
	int32Limit("MaxConns", "RUNPOOL_MAX_CONNS", 1, maxBackends, func(c *Config) *int32 { return &c.MaxConns }),
	int32Limit("MinConns", "RUNPOOL_MIN_CONNS", 0, maxBackends, func(c *Config) *int32 { return &c.MinConns }),
	int32Limit("MinIdleConns", "RUNPOOL_MIN_IDLE_CONNS", 0, maxBackends, func(c *Config) *int32 { return &c.MinIdleConns }),
	int32Limit("MaxConcurrentDials", "RUNPOOL_MAX_CONCURRENT_DIALS", 1, maxBackends, func(c *Config) *int32 { return &c.MaxConcurrentDials }),
	durLimit("DialTimeout", "RUNPOOL_DIAL_TIMEOUT", 10*time.Millisecond, 10*time.Minute, false, func(c *Config) *time.Duration { return &c.DialTimeout }),
	durLimit("AcquireTimeout", "RUNPOOL_ACQUIRE_TIMEOUT", time.Millisecond, time.Hour, false, func(c *Config) *time.Duration { return &c.AcquireTimeout }),
	durLimit("ServerAwayTimeout", "RUNPOOL_SERVER_AWAY_TIMEOUT", 10*time.Millisecond, time.Hour, true, func(c *Config) *time.Duration { return &c.ServerAwayTimeout }),
	durLimit("MaxConnIdleTime", "RUNPOOL_MAX_CONN_IDLE_TIME", 10*time.Millisecond, 24*time.Hour, false, func(c *Config) *time.Duration { return &c.MaxConnIdleTime }),
	durLimit("MaxConnLifetime", "RUNPOOL_MAX_CONN_LIFETIME", 10*time.Millisecond, maxLifetime, false, func(c *Config) *time.Duration { return &c.MaxConnLifetime }),
	durLimit("MaxConnLifetimeJitter", "RUNPOOL_MAX_CONN_LIFETIME_JITTER", time.Millisecond, maxLifetime, true, func(c *Config) *time.Duration { return &c.MaxConnLifetimeJitter }),
	// Below a millisecond the maintainer would keep a core busy.
	durLimit("MaintainInterval", "RUNPOOL_MAINTAIN_INTERVAL", time.Millisecond, 24*time.Hour, false, func(c *Config) *time.Duration { return &c.MaintainInterval }),
	// Any positive value: a tiny one probes every checkout, which is a policy.
	durLimit("ProbeAfterIdle", "RUNPOOL_PROBE_AFTER_IDLE", time.Nanosecond, 24*time.Hour, false, func(c *Config) *time.Duration { return &c.ProbeAfterIdle }),
	// A probe shorter than the floor of its own deadline fails healthy connections.
	durLimit("ProbeTimeout", "RUNPOOL_PROBE_TIMEOUT", minProbeTimeout, time.Minute, false, func(c *Config) *time.Duration { return &c.ProbeTimeout }),
	durLimit("PingTimeout", "RUNPOOL_PING_TIMEOUT", minProbeTimeout, time.Minute, false, func(c *Config) *time.Duration { return &c.PingTimeout }),
	// Below scheduling and GC pauses every tick would count as a freeze.
	durLimit("FreezeThreshold", "RUNPOOL_FREEZE_THRESHOLD", 10*time.Millisecond, time.Hour, false, func(c *Config) *time.Duration { return &c.FreezeThreshold }),
	durLimit("PathIdleTimeout", "RUNPOOL_PATH_IDLE_TIMEOUT", 10*time.Millisecond, 24*time.Hour, false, func(c *Config) *time.Duration { return &c.PathIdleTimeout }),
	durLimit("TCPKeepAliveIdle", "RUNPOOL_TCP_KEEPALIVE_IDLE", time.Second, maxKernelKeepAlive, false, func(c *Config) *time.Duration { return &c.TCPKeepAliveIdle }),
	durLimit("TCPKeepAliveInterval", "RUNPOOL_TCP_KEEPALIVE_INTERVAL", time.Second, maxKernelKeepAlive, false, func(c *Config) *time.Duration { return &c.TCPKeepAliveInterval }),
	intLimit("TCPKeepAliveCount", "RUNPOOL_TCP_KEEPALIVE_COUNT", 1, 127, func(c *Config) *int { return &c.TCPKeepAliveCount }), // Linux's TCP_KEEPCNT ceiling
	// From Linux's minimum retransmission timeout (below it a socket fails
	// at its first lost packet) to an hour, which also fits the option's
	// 32-bit milliseconds.
	durLimit("TCPUserTimeout", "RUNPOOL_TCP_USER_TIMEOUT", 200*time.Millisecond, time.Hour, true, func(c *Config) *time.Duration { return &c.TCPUserTimeout }),
	durLimit("ServerKeepAliveIdle", "RUNPOOL_SERVER_KEEPALIVE_IDLE", time.Second, maxKernelKeepAlive, true, func(c *Config) *time.Duration { return &c.ServerKeepAliveIdle }),
	// The server's idle_session_timeout is a 32-bit count of milliseconds.
	durLimit("ServerIdleSessionTimeout", "RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT", time.Second, (1<<31-1)*time.Millisecond, true, func(c *Config) *time.Duration { return &c.ServerIdleSessionTimeout }),
	intLimit("Budget", "RUNPOOL_BUDGET", 1, maxCount, func(c *Config) *int { return &c.Budget }),
	intLimit("MaxInstances", "RUNPOOL_MAX_INSTANCES", 1, maxCount, func(c *Config) *int { return &c.MaxInstances }),
	intLimit("Reserve", "RUNPOOL_RESERVE", 0, maxCount, func(c *Config) *int { return &c.Reserve }),
	intLimit("Concurrency", "RUNPOOL_CONCURRENCY", 1, maxCount, func(c *Config) *int { return &c.Concurrency }),
	durLimit("DrainTimeout", "RUNPOOL_DRAIN_TIMEOUT", 10*time.Millisecond, time.Hour, false, func(c *Config) *time.Duration { return &c.DrainTimeout }),
}

func durLimit(field, env string, min, max time.Duration, off bool, f func(*Config) *time.Duration) limit {
	return limit{field: field, env: env, min: int64(min), max: int64(max), off: off, duration: true,
		get: func(c *Config) int64 { return int64(*f(c)) },
		set: func(c *Config, v int64) { *f(c) = time.Duration(v) }}
}

func intLimit(field, env string, min, max int64, f func(*Config) *int) limit {
	return limit{field: field, env: env, min: min, max: max,
		get: func(c *Config) int64 { return int64(*f(c)) },
		set: func(c *Config, v int64) { *f(c) = int(v) }}
}

func int32Limit(field, env string, min, max int64, f func(*Config) *int32) limit {
	return limit{field: field, env: env, min: min, max: max,
		get: func(c *Config) int64 { return int64(*f(c)) },
		set: func(c *Config, v int64) { *f(c) = int32(v) }}
}

// limitFor returns the limit of the variable env, nil when env is not a
// number.
func limitFor(env string) *limit {
	for i := range limits {
		if limits[i].env == env {
			return &limits[i]
		}
	}
	return nil
}

// allowed describes the allowed values, as errors and the docs state them.
func (l *limit) allowed() string {
	s := "between " + l.format(l.min) + " and " + l.format(l.max)
	if l.off {
		s += ", or off"
	}
	return s
}

func (l *limit) format(v int64) string {
	if !l.duration {
		return strconv.FormatInt(v, 10)
	}
	s := time.Duration(v).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (l *limit) within(v int64) bool { return v >= l.min && v <= l.max }

// check reports a Config field outside its range; zero is the default.
func (l *limit) check(c *Config) error {
	v := l.get(c)
	if v == 0 || (v < 0 && l.off) || l.within(v) {
		return nil
	}
	shown := any(v)
	if l.duration {
		shown = time.Duration(v)
	}
	problem := "must be " + strings.TrimSuffix(l.allowed(), ", or off")
	if l.off {
		problem += ", or negative to disable"
	}
	return fieldError(l.field, shown, problem+" (0: the default)")
}

// parse sets the field from a variable's value.
func (l *limit) parse(c *Config, v string) error {
	if l.off && v == "off" {
		l.set(c, -1)
		return nil
	}
	var n int64
	if l.duration {
		d, err := time.ParseDuration(v)
		if err != nil {
			syntax := "not a duration (use Go syntax such as 250ms, 30s or 5m)"
			if l.off {
				syntax = "not a duration (use Go syntax such as 90s or 5m) or off"
			}
			return problem(syntax)
		}
		n = int64(d)
	} else {
		var err error
		if n, err = strconv.ParseInt(v, 10, 64); err != nil && !errors.Is(err, strconv.ErrRange) {
			return problem("not a whole number")
		} else if err != nil {
			return problem("out of range: must be " + l.allowed())
		}
	}
	if !l.within(n) {
		return problem("out of range: must be " + l.allowed())
	}
	l.set(c, n)
	return nil
}
