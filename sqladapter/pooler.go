package sqladapter

import (
	"github.com/jackc/pgx/v5"
)

// Behind a transaction-mode pooler (runpool.Config.Pooler, see the root
// package's pooler.go) a named prepared statement exists only on the
// server connection that prepared it, and the next transaction may run
// on another. So when pgx itself does not prepare named statements (its
// mode is not the default QueryExecModeCacheStatement, as the pooler mode
// sets), a sql.Stmt does not either: PrepareContext only describes the
// statement, through the unnamed statement, once per connection, and each
// execution sends the text in pgx's mode. Nothing is deallocated, since
// nothing named was created.

// describeOnly reports whether statements on pg must not be prepared by
// name: pgx does not prepare its own either.
func describeOnly(pg *pgx.Conn) bool {
	return pg.Config().DefaultQueryExecMode != pgx.QueryExecModeCacheStatement
}
