package sqladapter

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/cloudsqldial"
	"github.com/runpool/runpool/internal/pgxconn"
	"github.com/runpool/runpool/pgxadapter"
)

// CloudSQL selects a Cloud SQL instance reached through the Cloud SQL Go
// connector; it is pgxadapter's type (see pgxadapter.CloudSQL), set in
// Config.CloudSQL or by ConfigFromEnv from RUNPOOL_CLOUDSQL_INSTANCE.
type CloudSQL = pgxadapter.CloudSQL

// wireCloudSQL points cc at cfg.CloudSQL's instance through the process's
// connector Dialer, as pgxadapter does (see cloudsqldial.Wire).
func wireCloudSQL(ctx context.Context, cfg *Config, cc *pgx.ConnConfig) (*cloudsqldial.Handle, error) {
	return cloudsqldial.Wire(ctx, cc, (*cloudsqldial.Settings)(cfg.CloudSQL), pgxconn.Dialer(cfg.Pool))
}

// serverName names the server in errors: the Cloud SQL instance, or the
// host and port dialled.
func serverName(cfg *Config) string {
	if cfg.CloudSQL != nil {
		return "Cloud SQL instance " + cfg.CloudSQL.Instance
	}
	return fmt.Sprintf("server %s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port)
}
