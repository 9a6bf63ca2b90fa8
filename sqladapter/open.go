package sqladapter

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/runpool/runpool"
)

// Open creates a *sql.DB on a runpool pool from cfg. It checks that the
// server is reachable, so a wrong address or password fails here, at
// start, rather than on the first request.
func Open(ctx context.Context, cfg *Config) (*sql.DB, error) {
	c, err := newConnector(ctx, cfg)
	if err != nil {
		if cfg != nil && cfg.ConnConfig != nil {
			err = fmt.Errorf("%w (%s)", err, serverName(cfg))
		}
		return nil, err
	}
	db := OpenDB(c)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("runpool: cannot reach the %s: %w", serverName(cfg), err)
	}
	return db, nil
}

// OpenFromEnv creates a *sql.DB from the environment alone (see
// ConfigFromEnv): DATABASE_URL or the PG* variables, and RUNPOOL_*.
func OpenFromEnv(ctx context.Context) (*sql.DB, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return Open(ctx, cfg)
}

// OpenDB creates a *sql.DB on c. Its idle connections are shells whose
// server connection, if any, is parked in runpool (see DriverConn):
// runpool alone decides what stays idle. OpenDB lets database/sql keep
// up to twice the pool's size of them (database/sql's default is 2), so
// that a checkout reuses a shell rather than building a new one.
func OpenDB(c *Connector) *sql.DB {
	db := sql.OpenDB(c)
	if st := c.Stat(); st != nil {
		db.SetMaxIdleConns(shellsKept(st.MaxConns()))
	}
	return db
}

// shellsKept is how many idle shells database/sql keeps for a pool of
// maxConns: every connection the pool can lend, and as many callers
// waiting for one. A shell is a few hundred bytes.
func shellsKept(maxConns int32) int {
	return max(2*int(maxConns), 16)
}

// ErrNotRunpool is returned by Shutdown for a *sql.DB that sqladapter did
// not open.
var ErrNotRunpool = errors.New("sqladapter: the *sql.DB was not opened on a sqladapter.Connector")

// Stat returns a snapshot of the runpool pool behind db, or nil when db
// was not opened by this package.
func Stat(db *sql.DB) *runpool.Stat {
	if c := connectorOf(db); c != nil {
		return c.Stat()
	}
	return nil
}

// Shutdown drains the pool behind db, as http.Server.Shutdown drains a
// server (see runpool.Pool.Shutdown), then closes db. Call it on SIGTERM.
func Shutdown(ctx context.Context, db *sql.DB) (runpool.DrainReport, error) {
	c := connectorOf(db)
	if c == nil {
		return runpool.DrainReport{}, ErrNotRunpool
	}
	// The drain takes the idle shells' parked connections; let
	// database/sql drop the shells.
	db.SetMaxIdleConns(0)
	rep, err := c.Shutdown(ctx)
	_ = db.Close()
	return rep, err
}

// Drainer returns db as a runpool.Drainer, for serve.HTTP: its Shutdown
// is [Shutdown] of db (drain within ctx, then close db).
//
//	err := serve.HTTP(ctx, srv, 0, sqladapter.Drainer(db))
func Drainer(db *sql.DB) runpool.Drainer { return dbDrainer{db} }

type dbDrainer struct{ db *sql.DB }

func (d dbDrainer) Shutdown(ctx context.Context) (runpool.DrainReport, error) {
	return Shutdown(ctx, d.db)
}
