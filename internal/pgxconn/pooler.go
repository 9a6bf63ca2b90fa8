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
		if hint := poolerHint(pool, cc.Port); hint != "" {
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

// pgbouncerPort is PgBouncer's default port: a weak hint only, since
// plenty of servers listen elsewhere and some PostgreSQL servers on it.
const pgbouncerPort = 6432

// poolerHint returns a hint to log when nothing says a pooler is in front
// but the port suggests one (PgBouncer's default 6432), else "". The hint
// never switches the mode: a guess wrong either way would break prepared
// statements or the budget.
func poolerHint(pool runpool.Config, port uint16) string {
	if pool.Pooler != "" || port != pgbouncerPort {
		return ""
	}
	return "runpool: the server's port is 6432, PgBouncer's default; if a transaction-mode pooler is in front, " +
		"set RUNPOOL_POOLER=pgbouncer (else RUNPOOL_POOLER=none to silence this)"
}
