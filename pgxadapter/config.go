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
)

// Config configures a Pool: the pgx connection settings, runpool's pool
// settings, and hooks named for the moment they run.
type Config struct {
	// ConnConfig is the pgx configuration each connection is opened with.
	// Build it with pgx.ParseConfig (or use ParseConfig here).
	ConnConfig *pgx.ConnConfig
	// Pool holds runpool's settings.
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
	CloudSQL *CloudSQL
}

// ShouldPingParams are the parameters passed to ShouldPing.
type ShouldPingParams struct {
	Conn         *pgx.Conn
	IdleDuration time.Duration // since the connection was last released (or opened)
}

// ParseConfig builds a Config from a connection string (URL or key=value;
// an empty string means the standard PG* variables alone) and the
// RUNPOOL_* variables of the environment. Errors name the setting at
// fault and never contain a password.
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
	return &Config{ConnConfig: cc, Pool: pc, CloudSQL: cs}, nil
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
		cc.Host, cc.Port, cc.User, cc.Database, c.Pool.MaxConns)
}
