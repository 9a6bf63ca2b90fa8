package sqladapter

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// Connector is a driver.Connector whose connections come from a runpool
// pool. Build the *sql.DB with [OpenDB] (sql.OpenDB works too: see the
// package doc), or let sql.Open("runpool", dsn) build one ([Driver]).
// db.Close closes the idle connections at once and the ones in use as
// they come back, and returns, as database/sql's own pool does; [Shutdown]
// drains within a context, waiting for the ones in use.
type Connector struct {
	// pool is set when the Connector is built, or for sql.Open by the
	// first Connect, which opens it as Open does (see Driver).
	pool  atomic.Pointer[runpool.Pool[*pooled]]
	cfg   *Config
	rc    runpool.Config // cfg.PoolConfig()
	drv   *sqlDriver
	src   *source // its Cloud SQL Dialer share is released after the last connection closed
	hooks runpool.Hooks[*pooled]
	// opening admits one first open at a time (sql.Open's Connectors).
	opening chan struct{}
	closed  atomic.Bool
	// dsn and refs: the Connector shared by every sql.Open of dsn, and
	// how many of those *sql.DBs are open (under registry.mu; see Driver).
	dsn  string
	refs int
}

var (
	_ driver.Connector           = (*Connector)(nil)
	_ interface{ Close() error } = (*Connector)(nil) // sql.DB.Close calls it
)

// NewConnector creates the runpool pool behind a Connector. It opens no
// connection and reads nothing from the server: it divides a budget
// (RUNPOOL_BUDGET) among the instances as [Open] does, but only Open
// checks that the server is reachable and derives the pool's size from
// the server's limits when no budget is set.
func NewConnector(cfg *Config) (*Connector, error) {
	c, err := prepare(nil, cfg)
	if err != nil {
		return nil, err
	}
	pool, err := runpool.New(c.rc, c.src, c.hooks)
	if err != nil {
		c.src.Release()
		return nil, err
	}
	c.pool.Store(pool)
	return c, nil
}

// newConnector creates the pool with runpool.Open: one connection opened,
// limits read, budget checked.
func newConnector(ctx context.Context, cfg *Config) (*Connector, error) {
	c, err := prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pool, err := runpool.Open(ctx, c.rc, c.src, c.hooks)
	if err != nil {
		c.src.Release()
		return nil, err
	}
	c.pool.Store(pool)
	return c, nil
}

// prepare builds a Connector without its pool: the session settings, the
// Cloud SQL dialer (checked within ctx when given), the hooks.
func prepare(ctx context.Context, cfg *Config) (*Connector, error) {
	if cfg == nil || cfg.ConnConfig == nil {
		return nil, &runpool.ConfigError{Setting: "Config.ConnConfig", Problem: "is nil (build the Config with ParseConfig or ConfigFromEnv)"}
	}
	rc, err := cfg.PoolConfig()
	if err != nil {
		return nil, err
	}
	src, err := newSource(ctx, cfg, rc)
	if err != nil {
		return nil, err
	}
	c := &Connector{cfg: cfg, rc: rc, src: src, opening: make(chan struct{}, 1)}
	// runpool closes the connection when the hook fails; pgx's stdlib
	// option would leave it open.
	if ac := cfg.AfterConnect; ac != nil {
		c.hooks.AfterConnect = func(ctx context.Context, p *pooled) error { return ac(ctx, p.Pgx) }
	}
	c.drv = &sqlDriver{c: c}
	return c, nil
}

// Connect checks a connection out of runpool for database/sql, in a new
// shell (see DriverConn) that database/sql keeps when it takes it back.
// runpool has already replaced a connection the server ended (see the
// package doc).
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	pool := c.pool.Load()
	if pool == nil {
		var err error
		if pool, err = c.open(ctx); err != nil {
			return nil, err
		}
	}
	h, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &DriverConn{pool: pool, held: h}, nil
}

// open opens the pool of a Connector from sql.Open, within the context of
// the first call that needs a connection, as Open does. A failure is that
// call's; the next one tries again.
func (c *Connector) open(ctx context.Context) (*runpool.Pool[*pooled], error) {
	select {
	case c.opening <- struct{}{}:
		defer func() { <-c.opening }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if pool := c.pool.Load(); pool != nil {
		return pool, nil
	}
	if c.closed.Load() {
		return nil, runpool.ErrClosed
	}
	pool, err := runpool.Open(ctx, c.rc, c.src, c.hooks)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, c.src.ServerName())
	}
	c.pool.Store(pool)
	if c.closed.Load() { // Close ran meanwhile and may not have seen it
		c.closeNow()
		return nil, runpool.ErrClosed
	}
	return pool, nil
}

// Driver returns the driver.Driver of DBs opened on c; [Stat] and
// [Shutdown] find the pool through it.
func (c *Connector) Driver() driver.Driver { return c.drv }

// Close closes the pool as database/sql's Close closes its own: idle
// connections at once, the ones in use as they come back, without waiting
// for them, so a Rows or Tx that user code never closed does not hold it
// for the drain timeout. sql.DB.Close calls it. A Connector shared by
// several sql.Open of one DSN closes with the last of their *sql.DBs.
func (c *Connector) Close() error {
	if !release(c) {
		return nil
	}
	c.closeNow()
	return nil
}

// closeNow drains the pool within Config.Pool.DrainTimeout (see
// runpool.Pool.Shutdown). With no connection in a caller's hands it waits
// for the whole drain, orphaned sessions ended included; otherwise only
// until the idle connections are closed: the drain goes on for the ones
// in use, closing each as it comes back and cancelling what still runs
// at the deadline. The Cloud SQL dialer, which would cut them, is
// released after the last one closed.
func (c *Connector) closeNow() {
	c.closed.Store(true)
	pool := c.pool.Load()
	if pool == nil {
		c.src.Retire()
		return
	}
	// By shells database/sql has not taken back; not the pool's own brief
	// holds, which the drain waits for anyway.
	borrowed := int32(pool.CheckedOut())
	done := make(chan struct{})
	go func() {
		pool.Close()
		c.src.Retire()
		close(done)
	}()
	if borrowed == 0 {
		<-done
		return
	}
	// The drain closes the idle connections first; a closed one leaves
	// the count a moment after the drain has begun.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			if pool.Stat().TotalConns() <= borrowed {
				return
			}
		}
	}
}

// Shutdown drains the pool within ctx; see runpool.Pool.Shutdown. A
// Connector shared by several sql.Open of one DSN is drained for all of
// them; a later sql.Open of that DSN opens a new pool.
func (c *Connector) Shutdown(ctx context.Context) (runpool.DrainReport, error) {
	forget(c)
	c.closed.Store(true)
	var rep runpool.DrainReport
	var err error
	if pool := c.pool.Load(); pool != nil {
		rep, err = pool.Shutdown(ctx)
	}
	c.src.Release()
	return rep, err
}

// Stat returns a snapshot of the pool's state and counters, or nil for a
// Connector from sql.Open that has not opened its pool yet.
func (c *Connector) Stat() *runpool.Stat {
	if pool := c.pool.Load(); pool != nil {
		return pool.Stat()
	}
	return nil
}

// Config returns the configuration the Connector was created with.
func (c *Connector) Config() *Config { return c.cfg }

// sqlDriver links a *sql.DB back to its Connector through db.Driver().
type sqlDriver struct{ c *Connector }

// Open opens a connection for name as the registered driver does (see
// Driver.Open); database/sql never calls it for a DB on a Connector.
func (d *sqlDriver) Open(name string) (driver.Conn, error) { return registered.Open(name) }

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
