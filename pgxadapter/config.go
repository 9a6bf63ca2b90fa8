package pgxadapter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

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
	// CloudSQL, when set, dials a Cloud SQL instance through the Cloud
	// SQL Go connector instead of ConnConfig's host and port (see
	// cloudsql.go). ConfigFromEnv sets it when RUNPOOL_CLOUDSQL_INSTANCE is.
	CloudSQL *CloudSQL
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
	if errors.As(err, &pce) && pce.Unwrap() != nil {
		msg = pce.Unwrap().Error() // without pgx's copy of the string
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
	if pw := passwordIn(connString); pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return strings.ReplaceAll(msg, connString, "(redacted)")
}

// passwordIn finds the password in a URL or key=value connection string
// without fully parsing it (it is already known not to parse).
func passwordIn(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				return rest[c+1 : at]
			}
		}
		return ""
	}
	for _, f := range strings.Fields(s) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
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
