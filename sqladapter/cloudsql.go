package sqladapter

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/cloudsqldial"
	"github.com/runpool/runpool/pgxadapter"
)

// CloudSQL selects a Cloud SQL instance reached through the Cloud SQL Go
// connector; it is pgxadapter's type (see pgxadapter.CloudSQL), set in
// Config.CloudSQL or by ConfigFromEnv from RUNPOOL_CLOUDSQL_INSTANCE.
type CloudSQL = pgxadapter.CloudSQL

// wireCloudSQL points cc at cfg.CloudSQL's instance through the process's
// connector Dialer, as pgxadapter does; a nil Handle when cfg.CloudSQL is
// nil. Release the Handle after the pool drained.
func wireCloudSQL(ctx context.Context, cfg *Config, cc *pgx.ConnConfig) (*cloudsqldial.Handle, error) {
	if cfg.CloudSQL == nil {
		return nil, nil
	}
	s := cloudsqldial.Settings(*cfg.CloudSQL)
	if err := s.Validate("Config.CloudSQL.Instance", "Config.CloudSQL.IPType"); err != nil {
		return nil, err
	}
	return cloudsqldial.Wire(ctx, cc, &s, cfg.Pool)
}
