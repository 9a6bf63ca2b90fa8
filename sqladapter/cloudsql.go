package sqladapter

import (
	"github.com/runpool/runpool/internal/cloudsqldial"
	"github.com/runpool/runpool/internal/pgxconn"
	"github.com/runpool/runpool/pgxadapter"
)

// CloudSQL selects a Cloud SQL instance reached through the Cloud SQL Go
// connector; it is pgxadapter's type (see pgxadapter.CloudSQL), set in
// Config.CloudSQL or by ConfigFromEnv from RUNPOOL_CLOUDSQL_INSTANCE.
type CloudSQL = pgxadapter.CloudSQL

// serverName names cfg's server in errors: the Cloud SQL instance, or the
// host and port dialled.
func serverName(cfg *Config) string {
	return pgxconn.ServerName(cfg.ConnConfig, (*cloudsqldial.Settings)(cfg.CloudSQL))
}
