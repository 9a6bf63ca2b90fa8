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
// measured (BENCHMARKS.md, internal/benchmarks): database/sql's own pool
// checks a connection out and in for about 1.3-1.6 µs less CPU and four
// fewer allocations, because with no idle connection database/sql builds
// its record of the connection (a driverConn, its dependency map, more
// locking) on every checkout; runpool's part allocates nothing. A SELECT 1
// round trip on loopback is 13-21 µs, and SELECT 1 and a TPC-B mix showed
// no significant difference between the two; a real query hides it.
//
// # Dead connections and driver.ErrBadConn
//
// A connection the server already ended (pg_terminate_backend, a server
// shutdown: PostgreSQL writes a FATAL error, then closes) is replaced by
// runpool on checkout, before database/sql sees it: a checkout after at
// least 1 ms idle looks at the socket without blocking or sending
// (runpool.GoneChecker), and runpool then probes the dead one's idle
// siblings. A statement that fails before any byte reached the server
// returns driver.ErrBadConn, so database/sql retries it on another
// connection (pgx's stdlib driver does that for most such failures; this
// package for all, including a cached statement whose send failure shows
// only on its first row). Nothing that may have run on the server is
// retried.
//
// Users who build the *sql.DB themselves from a [Connector] must call
// db.SetMaxIdleConns(0) (or use [OpenDB]); [Shutdown] does it too.
package sqladapter
