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
// and drain it on SIGTERM with [Shutdown], or hand [Drainer](db) to
// serve.HTTP. db.Close does not drain: as database/sql's own pool,
// it closes the idle connections and returns at once, even with a Rows or
// Tx left open; the connections in use close as they come back, and
// what still runs on them is cancelled on the server after
// RUNPOOL_DRAIN_TIMEOUT. docs/migrating-database-sql.md lists what
// differs from sql.Open("pgx", ...).
//
// # One pool keeps the idle connections: runpool's
//
// database/sql has a pool of its own. Were its idle connections server
// connections, database/sql would hand them out without runpool's checks
// on checkout (the look at the socket, the probe after a freeze, the
// lifetimes, the budget, the drain), and the budget would be counted
// twice. So the driver.Conns database/sql keeps are shells ([DriverConn]):
// when database/sql takes one back it calls IsValid, where the shell
// parks its connection (runpool.Conn.Park): the connection is idle in
// runpool, which takes it from the shell whenever another caller needs
// it, at its maintainer's tick (every second) and when it drains. When
// database/sql reuses the shell it calls ResetSession, where the shell
// takes its parked connection back if runpool left it there and would
// trust it on checkout without I/O (the freeze, idle, lifetime and drain
// rules; after 1 ms it looks at the socket), or else checks one out of
// runpool within the caller's context. Every statement, Tx or sql.Conn
// therefore passes runpool's checkout, where waiting, the budget, the
// bounded probe, freeze detection and lifetimes apply, whatever
// SetMaxIdleConns, SetConnMaxLifetime or SetConnMaxIdleTime say (they
// apply to shells). db.Stats() counts shells; [Stat] shows the server
// connections, parked ones as idle.
//
// database/sql ignores an error from ResetSession, so when the checkout
// from runpool fails (the caller's deadline passes while the pool is
// full, the server refuses), the shell keeps the error and the call that
// reused it returns it: db.QueryContext and the like return it as with a
// new connection, and a sql.Conn from db.Conn returns it on its first use
// (then checks out again on the next).
//
// Keeping shells, database/sql builds its record of a connection (a
// driverConn, its entry in a dependency map) once per shell rather than on
// every checkout: a checkout costs one allocation, as with database/sql's
// own pool, and taking a parked connection back takes no lock (one clock
// read, which a freeze check needs); a sql.Stmt is prepared once per
// shell. A sql.Stmt is prepared by name on the server connection its shell
// holds and deallocated by its Close, as with pgx's stdlib driver (up to
// 512 per connection, the oldest deallocated first); one that runs on
// the server connection it was prepared on costs no extra round trip, and
// on another one pgx prepares it once in its statement cache.
// BENCHMARKS.md gives the cost.
//
// # Dead connections and driver.ErrBadConn
//
// A connection the server already ended (pg_terminate_backend, a server
// shutdown: PostgreSQL writes a FATAL error, then closes) is replaced by
// runpool on checkout, before database/sql sees it: a checkout after at
// least 1 ms idle looks at the socket without blocking or sending
// (runpool.GoneChecker), and runpool then probes the dead one's idle
// siblings. A shell whose parked connection runpool closed as dead
// reports driver.ErrBadConn from ResetSession, as pgx's stdlib driver
// does for a dead idle connection, so database/sql discards it and
// db.Stats counts it no more. A statement that fails before any byte reached the server
// returns driver.ErrBadConn, so database/sql retries it on another
// connection (pgx's stdlib driver does that for most such failures; this
// package for all, including a cached statement whose send failure shows
// only on its first row). Nothing that may have run on the server is
// retried.
//
// Users who build the *sql.DB themselves from a [Connector] with
// sql.OpenDB get the same guarantees; [OpenDB] also lets database/sql keep
// enough idle shells that checkouts do not build new ones.
package sqladapter
