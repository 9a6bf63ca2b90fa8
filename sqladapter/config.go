package sqladapter

import "github.com/runpool/runpool/pgxadapter"

// Config configures a database/sql pool: pgx's connection settings,
// runpool's pool settings and the AfterConnect hook. It is pgxadapter's
// Config, so one parsed configuration serves both adapters.
type Config = pgxadapter.Config

// ParseConfig builds a Config from a connection string (URL or key=value;
// empty means the standard PG* variables alone) and the RUNPOOL_*
// variables. Errors name the setting at fault and never hold a password.
func ParseConfig(connString string) (*Config, error) {
	return pgxadapter.ParseConfig(connString)
}

// ConfigFromEnv builds a Config from the environment alone: DATABASE_URL
// (or, when it is unset, the standard PG* variables) and RUNPOOL_*.
func ConfigFromEnv() (*Config, error) {
	return pgxadapter.ConfigFromEnv()
}
