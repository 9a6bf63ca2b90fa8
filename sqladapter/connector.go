package sqladapter

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/cloudsqldial"
	"github.com/runpool/runpool/internal/pgxconn"
)

// Connector is a driver.Connector whose connections come from a runpool
// pool. Build the *sql.DB with [OpenDB] (sql.OpenDB works too: see the
// package doc). db.Close drains the pool within Config.Pool.DrainTimeout;
// [Shutdown] drains it within a context.
type Connector struct {
	pool   *runpool.Pool[*pooled]
	cfg    *Config
	drv    *sqlDriver
	dialer *cloudsqldial.Handle // Cloud SQL connector share, released after the drain
}

var (
	_ driver.Connector           = (*Connector)(nil)
	_ interface{ Close() error } = (*Connector)(nil) // sql.DB.Close calls it
)

// NewConnector creates the runpool pool behind a Connector. It opens no
// connection (see [Open], which checks that the server is reachable and
// derives the pool's size from the server's limits).
func NewConnector(cfg *Config) (*Connector, error) {
	return newConnector(nil, cfg)
}

// newConnector creates the pool with runpool.Open when ctx is given (one
// connection opened, limits read, budget checked), else with runpool.New.
func newConnector(ctx context.Context, cfg *Config) (*Connector, error) {
	if cfg == nil || cfg.ConnConfig == nil {
		return nil, &runpool.ConfigError{Setting: "Config.ConnConfig", Problem: "is nil (build the Config with ParseConfig or ConfigFromEnv)"}
	}
	session := pgxconn.Setup(cfg.ConnConfig, cfg.Pool)
	dialer, err := wireCloudSQL(ctx, cfg, session.ConnConfig())
	if err != nil {
		return nil, err
	}
	pgxconn.WarnTransport(&session.ConnConfig().Config, cfg.Pool, cfg.CloudSQL != nil)
	var hooks runpool.Hooks[*pooled]
	ac := cfg.AfterConnect
	// runpool closes the connection when the hook fails; pgx's stdlib
	// option would leave it open.
	hooks.AfterConnect = func(ctx context.Context, c *pooled) error {
		if err := session.AfterConnect(ctx, c.pg); err != nil {
			return err
		}
		if ac != nil {
			return ac(ctx, c.pg)
		}
		return nil
	}
	src := &source{session: session}
	var pool *runpool.Pool[*pooled]
	if ctx != nil {
		pool, err = runpool.Open(ctx, cfg.Pool, src, hooks)
	} else {
		pool, err = runpool.New(cfg.Pool, src, hooks)
	}
	if err != nil {
		dialer.Release()
		return nil, err
	}
	c := &Connector{pool: pool, cfg: cfg, dialer: dialer}
	c.drv = &sqlDriver{c: c}
	return c, nil
}

// Connect checks a connection out of runpool for database/sql, in a new
// shell (see DriverConn) that database/sql keeps when it takes it back.
// runpool has already replaced a connection the server ended (see the
// package doc).
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	h, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &DriverConn{pool: c.pool, held: h}, nil
}

// Driver returns the driver.Driver of DBs opened on c; [Stat] and
// [Shutdown] find the pool through it.
func (c *Connector) Driver() driver.Driver { return c.drv }

// Close drains the pool within Config.Pool.DrainTimeout. sql.DB.Close
// calls it.
func (c *Connector) Close() error {
	c.pool.Close()
	c.dialer.Release()
	return nil
}

// Shutdown drains the pool within ctx; see runpool.Pool.Shutdown.
func (c *Connector) Shutdown(ctx context.Context) (runpool.DrainReport, error) {
	rep, err := c.pool.Shutdown(ctx)
	c.dialer.Release()
	return rep, err
}

// Stat returns a snapshot of the pool's state and counters.
func (c *Connector) Stat() *runpool.Stat { return c.pool.Stat() }

// Config returns the configuration the Connector was created with.
func (c *Connector) Config() *Config { return c.cfg }

// sqlDriver links a *sql.DB back to its Connector through db.Driver().
type sqlDriver struct{ c *Connector }

// errNoDSN explains why sql.Open cannot reach this driver.
var errNoDSN = errors.New("sqladapter: open the database with sqladapter.Open or OpenDB, not sql.Open")

func (d *sqlDriver) Open(string) (driver.Conn, error) { return nil, errNoDSN }

// connectorOf returns the Connector behind db, or nil when db did not come
// from this package.
func connectorOf(db *sql.DB) *Connector {
	if d, ok := db.Driver().(*sqlDriver); ok {
		return d.c
	}
	return nil
}

// What sql.Conn.Raw users assert instead of *stdlib.Conn; see DriverConn.
var _ interface{ Conn() *pgx.Conn } = (*DriverConn)(nil)
