// Package sqladapter is runpool's pool for users of database/sql: a
// *sql.DB whose connections come from runpool's serverless-aware pool, with
// pgx's own database/sql driver (github.com/jackc/pgx/v5/stdlib) on each
// connection, so queries, transactions, prepared statements, sql.Conn and
// pgx types behave as they do with that driver.
//
// Replace
//
//	db, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
//
// with
//
//	db, err := sqladapter.OpenFromEnv(ctx)
//
// and drain it on SIGTERM with [Shutdown] (db.Close drains too, within
// RUNPOOL_DRAIN_TIMEOUT).
//
// # One pool keeps the idle connections: runpool's
//
// database/sql has a pool of its own. Two pools stacked on each other would
// each keep idle connections, so the budget would be counted twice and
// database/sql would hand out connections that runpool never gets to probe
// after a freeze. So the *sql.DB from [Open] and [OpenDB] keeps none
// (SetMaxIdleConns(0), as pgx's stdlib.OpenDBFromPool does) and sets no
// MaxOpenConns: every statement (or Tx, or sql.Conn) checks a connection
// out of runpool, where waiting, the budget, the bounded probe, freeze
// detection and lifetimes apply, and database/sql's Close of the connection
// returns it to runpool. Each pooled connection carries its own driver.Conn
// wrapper, so a checkout allocates nothing on runpool's side; database/sql
// still allocates its own record per checkout.
//
// The alternative, letting database/sql keep the idle connections, would
// bypass every defence that runs on checkout. What it would save was
// measured (bench_test.go): database/sql's own pool checks a connection out
// and in about 0.9 µs faster (BenchmarkSQLConn: 0.25 µs against 1.2 µs),
// because with no idle connection database/sql builds its record of the
// connection (4 allocations, more locking) on every checkout; runpool's
// part allocates nothing. A SELECT 1 round trip on loopback is 12-20 µs:
// on an idle machine the two are equal, on a loaded one the extra CPU costs
// up to about 20% of that (BenchmarkSQLSelect1); a real query hides it.
//
// # Dead connections and driver.ErrBadConn
//
// On a checkout after at least 1 ms idle the connector looks, without
// blocking or sending anything, at whether the server already closed the
// connection or wrote to it unasked (PostgreSQL sends a FATAL error before it closes a session
// that pg_terminate_backend or a shutdown ended). Such a connection is
// closed and the checkout fails with driver.ErrBadConn, so database/sql
// retries on another connection; runpool then probes the dead one's idle
// siblings before handing them out. Statements that fail before any byte
// reached the server also return driver.ErrBadConn (pgx's stdlib does
// that for most; this package for all), and nothing that may have run on the server is retried.
//
// Users who build the *sql.DB themselves from a [Connector] must call
// db.SetMaxIdleConns(0) (or use [OpenDB]); [Shutdown] does it too.
package sqladapter
