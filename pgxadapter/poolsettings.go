package pgxadapter

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// poolSetting is one of pgxpool's pool settings: its Config field, its
// pool_* connection-string key, and the RUNPOOL_* variable and
// runpool.Config field that carry the same setting under runpool's name.
type poolSetting struct {
	field, key, env, rpField string
	top                      func(*Config) any         // *int32 or *time.Duration
	rp                       func(*runpool.Config) any // the same type
}

var poolSettings = []poolSetting{
	{"MaxConns", "pool_max_conns", "RUNPOOL_MAX_CONNS", "MaxConns",
		func(c *Config) any { return &c.MaxConns }, func(r *runpool.Config) any { return &r.MaxConns }},
	{"MinConns", "pool_min_conns", "RUNPOOL_MIN_CONNS", "MinConns",
		func(c *Config) any { return &c.MinConns }, func(r *runpool.Config) any { return &r.MinConns }},
	{"MinIdleConns", "pool_min_idle_conns", "RUNPOOL_MIN_IDLE_CONNS", "MinIdleConns",
		func(c *Config) any { return &c.MinIdleConns }, func(r *runpool.Config) any { return &r.MinIdleConns }},
	{"MaxConnLifetime", "pool_max_conn_lifetime", "RUNPOOL_MAX_CONN_LIFETIME", "MaxConnLifetime",
		func(c *Config) any { return &c.MaxConnLifetime }, func(r *runpool.Config) any { return &r.MaxConnLifetime }},
	{"MaxConnIdleTime", "pool_max_conn_idle_time", "RUNPOOL_MAX_CONN_IDLE_TIME", "MaxConnIdleTime",
		func(c *Config) any { return &c.MaxConnIdleTime }, func(r *runpool.Config) any { return &r.MaxConnIdleTime }},
	{"HealthCheckPeriod", "pool_health_check_period", "RUNPOOL_MAINTAIN_INTERVAL", "MaintainInterval",
		func(c *Config) any { return &c.HealthCheckPeriod }, func(r *runpool.Config) any { return &r.MaintainInterval }},
	{"MaxConnLifetimeJitter", "pool_max_conn_lifetime_jitter", "RUNPOOL_MAX_CONN_LIFETIME_JITTER", "MaxConnLifetimeJitter",
		func(c *Config) any { return &c.MaxConnLifetimeJitter }, func(r *runpool.Config) any { return &r.MaxConnLifetimeJitter }},
	{"PingTimeout", "pool_ping_timeout", "RUNPOOL_PING_TIMEOUT", "PingTimeout",
		func(c *Config) any { return &c.PingTimeout }, func(r *runpool.Config) any { return &r.PingTimeout }},
}

func load(p any) int64 {
	switch v := p.(type) {
	case *int32:
		return int64(*v)
	case *time.Duration:
		return int64(*v)
	}
	panic("pgxadapter: pool setting of unknown type")
}

func store(p any, x int64) {
	switch v := p.(type) {
	case *int32:
		*v = int32(x)
	case *time.Duration:
		*v = time.Duration(x)
	}
}

// String formats a value of the setting for an error message.
func (s *poolSetting) format(x int64) string {
	if _, ok := s.top(&Config{}).(*time.Duration); ok {
		return time.Duration(x).String()
	}
	return strconv.FormatInt(x, 10)
}

// applyPoolSettings moves pgxpool's pool settings into cfg's fields: each
// takes the RUNPOOL_* variable when it is set, else the pool_* key of the
// connection string, else stays zero (runpool's default). The keys are
// removed from the runtime parameters (pgx would send them to the server,
// which refuses an unknown parameter), and runpool.Config's counterparts
// are cleared, so that each setting has one place.
func applyPoolSettings(cfg *Config, cc *pgx.ConnConfig, setting string) error {
	for i := range poolSettings {
		s := &poolSettings[i]
		raw, inString := cc.RuntimeParams[s.key]
		delete(cc.RuntimeParams, s.key)
		if envSet(s.env) {
			store(s.top(cfg), load(s.rp(&cfg.Pool)))
		} else if inString {
			v, err := s.parse(raw)
			if err != nil {
				return &runpool.ConfigError{Setting: setting + ": " + s.key, Value: raw, Problem: err.Error()}
			}
			store(s.top(cfg), v)
		}
		store(s.rp(&cfg.Pool), 0)
	}
	if envSet("RUNPOOL_MAX_CONN_LIFETIME") && cfg.MaxConnLifetimeJitter == 0 {
		cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 10 // runpool's default with its variable
	}
	return nil
}

// parse reads a pool_* value as pgxpool.ParseConfig does: a 32-bit
// integer (pool_max_conns at least 1) or a Go duration. An explicit
// pool_max_conn_lifetime_jitter=0 is pgxpool's "no jitter", which runpool
// spells negative (its zero is the default, a tenth of the lifetime).
func (s *poolSetting) parse(raw string) (int64, error) {
	if _, ok := s.top(&Config{}).(*time.Duration); ok {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return 0, fmt.Errorf("cannot parse %s: %w", s.key, err)
		}
		if d == 0 && s.field == "MaxConnLifetimeJitter" {
			d = -1
		}
		return int64(d), nil
	}
	n, err := strconv.ParseInt(raw, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %s: %w", s.key, err)
	}
	if s.field == "MaxConns" && n < 1 {
		return 0, fmt.Errorf("%s too small: must be at least 1", s.key)
	}
	return n, nil
}

// envSet reports whether the variable is set to a value, as
// runpool.ConfigFromEnv reads it (blank counts as unset).
func envSet(name string) bool {
	v, ok := os.LookupEnv(name)
	return ok && strings.TrimSpace(v) != ""
}

// PoolConfig returns the runpool settings a pool built from c runs with:
// c.Pool, with pgxpool's pool settings (MaxConns, MinConns,
// MinIdleConns, MaxConnLifetime, MaxConnLifetimeJitter, MaxConnIdleTime,
// HealthCheckPeriod, PingTimeout) in their runpool counterparts. A
// setting given in both places must agree: otherwise which one wins
// would be a guess, so it is an error naming both.
func (c *Config) PoolConfig() (runpool.Config, error) {
	rc := c.Pool
	for i := range poolSettings {
		s := &poolSettings[i]
		top, rp := load(s.top(c)), load(s.rp(&rc))
		switch {
		case top == 0:
			continue // Pool's value, or runpool's default
		case rp != 0 && rp != top:
			return rc, &runpool.ConfigError{Setting: "Config." + s.field, Value: s.format(top),
				Problem: fmt.Sprintf("disagrees with Config.Pool.%s=%s, the same setting under runpool's name: set one of them", s.rpField, s.format(rp))}
		}
		store(s.rp(&rc), top)
	}
	rc.MaxConns = min(rc.MaxConns, maxBackends)
	if c.MaxConnLifetime != 0 && c.MaxConnLifetimeJitter == 0 && rc.MaxConnLifetimeJitter == 0 {
		rc.MaxConnLifetimeJitter = -1 // pgxpool's: a lifetime set is exact unless a jitter is asked for
	}
	return rc, nil
}

// maxBackends is PostgreSQL's ceiling on max_connections, runpool's on
// MaxConns.
const maxBackends = 1<<18 - 1
