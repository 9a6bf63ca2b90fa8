package pgxconn

import (
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// forPooler adapts cc for a transaction-mode pooler in front of the
// server (see the root package's pooler.go). pgx's default mode prepares
// named statements and runs them by name later, possibly on another
// server connection, where they do not exist. Describe-cached execution
// fetches a statement's description once (through the unnamed statement)
// and sends the text with every execution, one round trip, so any server
// connection can run it. A mode the user chose other than the default
// stays.
func forPooler(cc *pgx.ConnConfig, pool runpool.Config) {
	if !pool.BehindPooler() {
		if hint := pool.PoolerHint(cc.Port); hint != "" {
			logger := pool.Logger
			if logger == nil {
				logger = slog.Default()
			}
			logger.Info(hint, "pool", pool.Name)
		}
		return
	}
	if cc.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		cc.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
}
