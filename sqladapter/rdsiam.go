package sqladapter

import (
	"context"
	"database/sql/driver"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// connectStdlib dials one pgx stdlib connection with cc: what
// rdsiam.Connect retries with a renewed token when Config.RDSIAM is set
// (RUNPOOL_RDS_IAM_AUTH=true).
func connectStdlib(ctx context.Context, cc *pgx.ConnConfig) (driver.Conn, error) {
	return stdlib.GetConnector(*cc).Connect(ctx)
}
