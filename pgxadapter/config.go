package pgxadapter

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/rdsiam"
)

// Config configures a Pool as pgxpool.Config does: the pgx connection
// settings, pgxpool's pool settings and hooks under pgxpool's names, and
// runpool's own settings in Pool. Build it with ParseConfig (or
// ConfigFromEnv), then change what you need: NewWithConfig panics on a
// Config built otherwise, as pgxpool's does.
//
// A pool setting left zero takes runpool's default (see the README's
// Environment table), not pgxpool's; ParseConfig leaves zero what neither
// the connection string nor a RUNPOOL_* variable sets.
type Config struct {
	// ConnConfig is the pgx configuration each connection is opened with.
	ConnConfig *pgx.ConnConfig

	// MaxConns is the most connections the pool may hold (runpool's
	// Pool.MaxConns). Zero: derived from the budget (RUNPOOL_BUDGET,
	// RUNPOOL_MAX_INSTANCES), else pgxpool's default, max(4, GOMAXPROCS).
	// Above PostgreSQL's own ceiling on max_connections (262143; pgxpool
	// users write math.MaxInt32 for "no limit") it is that ceiling.
	MaxConns int32
	// MinConns is the number of connections the maintainer keeps open.
	MinConns int32
	// MinIdleConns is the number of idle connections the maintainer keeps
	// open (within MaxConns).
	MinIdleConns int32
	// MaxConnLifetime closes a connection this old when it is next idle.
	// Zero: runpool's default, 30m (not "no limit": see docs/migrating.md).
	MaxConnLifetime time.Duration
	// MaxConnLifetimeJitter adds up to this much to each connection's
	// lifetime. Zero: none when MaxConnLifetime is set (as in pgxpool),
	// a tenth of the lifetime when it takes runpool's default (from
	// RUNPOOL_MAX_CONN_LIFETIME too, as runpool's variables promise).
	// Negative: none.
	MaxConnLifetimeJitter time.Duration
	// MaxConnIdleTime closes a connection idle this long. Zero: 45s, below
	// the idle timeout of the NATs and proxies of serverless platforms.
	MaxConnIdleTime time.Duration
	// HealthCheckPeriod is how often the maintainer runs (runpool's
	// Pool.MaintainInterval): idle and lifetime expiry, the MinConns and
	// MinIdleConns floors, freeze detection. Zero: 1s.
	HealthCheckPeriod time.Duration
	// PingTimeout, when set, is a hard cap on a checkout probe's
	// deadline, as in pgxpool. Zero: runpool's deadline alone, which
	// pgxpool does not have: the time a fresh connection takes to open,
	// within Pool.ProbeTimeout (250ms), and never under four of the
	// path's round trips.
	PingTimeout time.Duration

	// Pool holds runpool's own settings. Its fields that are pgxpool's
	// settings under runpool's names (MaxConns, MinConns, MinIdleConns,
	// MaxConnLifetime, MaxConnLifetimeJitter, MaxConnIdleTime,
	// MaintainInterval, PingTimeout) are left zero by ParseConfig: set
	// the fields above instead (setting both to different values is an
	// error).
	Pool runpool.Config
	// AfterConnect runs on every new connection before its first use.
	AfterConnect func(ctx context.Context, conn *pgx.Conn) error
	// BeforeConnect runs before each dial with a copy of the ConnConfig
	// the pool dials with (runpool's dialer and session settings
	// included); changes reach that dial only, and an error fails it. It
	// is where a credential valid for a short time is set per dial (an RDS
	// or Cloud SQL IAM token, a Vault lease).
	BeforeConnect func(ctx context.Context, cc *pgx.ConnConfig) error
	// BeforeAcquire runs on checkout, as PrepareConn does: false closes
	// the connection and the caller gets another.
	//
	// Deprecated: Use PrepareConn, which takes precedence when both are
	// set (as in pgxpool).
	BeforeAcquire func(ctx context.Context, conn *pgx.Conn) bool
	// PrepareConn runs on checkout after runpool's own checks (probe,
	// trust, freeze), last before the caller gets the connection, as in
	// pgxpool: true and a nil error hands it out; true and an error puts
	// it back in the pool and fails the checkout with the error; false
	// closes it, and then fails the checkout with a non-nil error or gets
	// the caller another connection with a nil one (after MaxConns
	// rejections in a row the checkout fails).
	PrepareConn func(ctx context.Context, conn *pgx.Conn) (bool, error)
	// AfterRelease runs, in its own goroutine as in pgxpool, on a
	// released connection that runpool would keep (open, idle, outside a
	// transaction, within its lifetime, the pool not draining), before
	// it goes back to the pool: false closes it instead.
	AfterRelease func(conn *pgx.Conn) bool
	// BeforeClose runs right before the pool closes a connection it
	// opened, whatever the reason (idle or lifetime expiry, a failed
	// probe, Reset, the drain). A hijacked connection is the caller's:
	// the pool does not close it.
	BeforeClose func(conn *pgx.Conn)
	// ShouldPing runs on checkout of a connection runpool would hand out
	// without a probe: true has it probed first (a failed probe closes it
	// and the caller gets another). It adds probes, never removes one
	// runpool's checks call for; unset, runpool's checks alone decide
	// (they probe a connection idle past Pool.ProbeAfterIdle, or after a
	// sign of trouble).
	ShouldPing func(ctx context.Context, params ShouldPingParams) bool
	// CloudSQL, when set, dials a Cloud SQL instance through the Cloud
	// SQL Go connector instead of ConnConfig's host and port (see
	// cloudsql.go). ConfigFromEnv sets it when RUNPOOL_CLOUDSQL_INSTANCE is.
	// The program must import package github.com/runpool/runpool/cloudsql,
	// which links the connector in; without it the pool fails to open.
	CloudSQL *CloudSQL
	// RDSIAM, when set, logs in to RDS, Aurora or RDS Proxy with IAM
	// tokens: each dial's password is the current token, and a refused
	// token is renewed and the dial retried once (rdsiam.Connect).
	// ConfigFromEnv sets it when RUNPOOL_RDS_IAM_AUTH=true.
	RDSIAM *rdsiam.Auth

	createdByParseConfig bool // NewWithConfig requires it, as pgxpool's does
}

// Copy returns a deep copy of c that is safe to change and to build
// another pool with; as with pgx's, the tls.Config is shared.
func (c *Config) Copy() *Config {
	n := *c
	n.ConnConfig = c.ConnConfig.Copy()
	if c.CloudSQL != nil {
		cs := *c.CloudSQL
		n.CloudSQL = &cs
	}
	return &n
}

// ConnString returns the connection string c was parsed from, pool_*
// keys included, as pgxpool's does.
func (c *Config) ConnString() string { return c.ConnConfig.ConnString() }

// ShouldPingParams are the parameters passed to ShouldPing.
type ShouldPingParams struct {
	Conn         *pgx.Conn
	IdleDuration time.Duration // since the connection was last released (or opened)
}

// ParseConfig builds a Config from a connection string (URL or key=value;
// an empty string means the standard PG* variables alone) and the
// RUNPOOL_* variables of the environment. It reads pgxpool's pool_* keys
// as pgxpool.ParseConfig does (pool_max_conns, pool_min_conns,
// pool_min_idle_conns, pool_max_conn_lifetime, pool_max_conn_idle_time,
// pool_health_check_period, pool_max_conn_lifetime_jitter,
// pool_ping_timeout) and keeps them from the server. Where a RUNPOOL_*
// variable and a pool_* key give the same setting, the variable wins:
// it is set for this deployment, while the connection string is often a
// secret shared with other clients (docs/migrating.md). Errors name the
// setting at fault and never contain a password.
func ParseConfig(connString string) (*Config, error) {
	return parseConfig(connString, "connection string")
}

// ConfigFromEnv builds a Config from the environment alone: DATABASE_URL
// (or, when it is unset, the standard PG* variables) and RUNPOOL_*.
func ConfigFromEnv() (*Config, error) {
	return parseConfig(os.Getenv("DATABASE_URL"), "DATABASE_URL")
}

func parseConfig(connString, setting string) (*Config, error) {
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, connStringError(setting, connString, err)
	}
	pc, err := runpool.ConfigFromEnv(runpool.Config{})
	if err != nil {
		return nil, err
	}
	cs, err := cloudSQLFromEnv()
	if err != nil {
		return nil, err
	}
	iam, err := rdsIAMFromEnv(cc, cs != nil)
	if err != nil {
		return nil, err
	}
	cfg := &Config{ConnConfig: cc, Pool: pc, CloudSQL: cs, RDSIAM: iam, createdByParseConfig: true}
	if setting == "DATABASE_URL" && connString == "" {
		setting = "PG* variables"
	}
	if err := applyPoolSettings(cfg, cc, setting); err != nil {
		return nil, err
	}
	return cfg, nil
}

// connStringError reports a connection string that pgx cannot parse,
// naming the setting and keeping the password out of the message.
func connStringError(setting, connString string, err error) error {
	msg := err.Error()
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		if pce.Unwrap() != nil {
			msg = pce.Unwrap().Error() // without pgx's copy of the string
		} else if _, after, ok := strings.Cut(msg, "`: "); ok && strings.HasPrefix(msg, "cannot parse `") {
			// pgx's copy is redacted on a best-effort basis only (a quoted
			// password holding \' shows): keep only what follows it.
			msg = "cannot parse: " + after
		}
	}
	msg = redact(msg, connString)
	if setting == "DATABASE_URL" && connString == "" {
		setting = "PG* variables"
	}
	if !strings.HasPrefix(msg, "cannot parse") {
		msg = "cannot parse: " + msg
	}
	return &runpool.ConfigError{Setting: setting, Problem: msg}
}

// redact removes anything that could be the password in connString from msg.
func redact(msg, connString string) string {
	if connString == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, connString, "(redacted)")
	pws := passwordsIn(connString)
	for _, pw := range pws {
		if pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	for _, pw := range pws {
		if showsPart(msg, pw) {
			// An unescaped '@', ':' or '/' in the password makes the
			// boundaries ambiguous: the parser's words may quote a piece.
			return "cannot parse: the details would show part of the password " +
				"(are its special characters percent-encoded, or quoted in key=value form?)"
		}
	}
	return msg
}

// showsPart reports whether msg holds six consecutive bytes of pw (all
// of a shorter one).
func showsPart(msg, pw string) bool {
	n := min(len(pw), 6)
	for i := 0; n > 0 && i+n <= len(pw); i++ {
		if strings.Contains(msg, pw[i:i+n]) {
			return true
		}
	}
	return false
}

// passwordsIn finds the password in a URL or key=value connection string
// without fully parsing it (it is already known not to parse), as
// written and as unescaped, since an error may quote either.
func passwordsIn(s string) []string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				pw := rest[c+1 : at]
				if u, err := url.PathUnescape(pw); err == nil && u != pw {
					return []string{pw, u}
				}
				return []string{pw}
			}
		}
		return nil
	}
	// key=value: values may be quoted ('...') with backslash escapes, and
	// spaces may surround the '='.
	var found []string
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "password")
		if j < 0 {
			break
		}
		k := strings.TrimLeft(s[i+j+len("password"):], " \t\n\r\v\f")
		i += j + len("password")
		if !strings.HasPrefix(k, "=") {
			continue
		}
		v := strings.TrimLeft(k[1:], " \t\n\r\v\f")
		quoted := strings.HasPrefix(v, "'")
		if quoted {
			v = v[1:]
		}
		var raw, plain strings.Builder
		for n := 0; n < len(v); n++ {
			c := v[n]
			if quoted && c == '\'' || !quoted && strings.IndexByte(" \t\n\r\v\f", c) >= 0 {
				break
			}
			raw.WriteByte(c)
			if c == '\\' && n+1 < len(v) {
				n++
				raw.WriteByte(v[n])
				c = v[n]
			}
			plain.WriteByte(c)
		}
		found = append(found, raw.String(), plain.String())
		if !quoted {
			// An unquoted password with spaces ends, as the user meant it,
			// at the next key=value: the parser reports its tail as a key.
			end := len(v)
			if eq := strings.IndexByte(v, '='); eq >= 0 {
				end = max(strings.LastIndexAny(v[:eq], " \t\n\r\v\f"), 0)
			}
			found = append(found, strings.TrimSpace(v[:end]))
		}
	}
	return found
}

// String describes the Config without its password.
func (c *Config) String() string {
	if c == nil || c.ConnConfig == nil {
		return "pgxadapter.Config{}"
	}
	cc := c.ConnConfig
	return fmt.Sprintf("pgxadapter.Config{host=%s port=%d user=%s database=%s max_conns=%d}",
		cc.Host, cc.Port, cc.User, cc.Database, c.MaxConns)
}
