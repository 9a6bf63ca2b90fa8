package pgxadapter

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
)

// Pool is a runpool pool of *pgx.Conn with the query methods of
// *pgxpool.Pool. It is safe for concurrent use.
type Pool struct {
	p         *runpool.Pool[*pconn]
	cfg       *Config
	connector *connector // its Cloud SQL Dialer share is released after the drain

	acquireTracer AcquireTracer // ConnConfig.Tracer's, when it implements it (tracer.go)
}

// New creates a pool from a connection string, as pgxpool.New does: see
// ParseConfig for what it reads, and NewWithConfig for when it dials.
func New(ctx context.Context, connString string) (*Pool, error) {
	cfg, err := ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	return NewWithConfig(ctx, cfg)
}

// NewWithConfig creates a pool from cfg, which must come from ParseConfig
// or ConfigFromEnv (it panics otherwise, as pgxpool's does). Like
// pgxpool's, it opens no connection when cfg alone sizes the pool (see
// runpool.Start): the MinConns and MinIdleConns floors open in the
// background, and an unreachable server or a wrong password fails the
// first Acquire. When the pool's size must come from the server's limits
// (RUNPOOL_MAX_INSTANCES set without MaxConns or RUNPOOL_BUDGET), or the
// start-up check needs them (RUNPOOL_BUDGET set, or
// RUNPOOL_BUDGET_CHECK=error), it dials once within ctx to read them,
// and fails when it cannot.
func NewWithConfig(ctx context.Context, cfg *Config) (*Pool, error) {
	if cfg == nil || !cfg.createdByParseConfig {
		panic("config must be created by ParseConfig")
	}
	if cfg.ConnConfig == nil {
		return nil, &runpool.ConfigError{Setting: "Config.ConnConfig", Problem: "is nil"}
	}
	rc, err := cfg.PoolConfig()
	if err != nil {
		return nil, err
	}
	conn, err := newConnector(ctx, cfg, rc)
	if err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, connector: conn}
	rp, err := runpool.Start(ctx, rc, conn, p.hooks())
	if err != nil {
		conn.Release()
		return nil, fmt.Errorf("%w (%s)", err, conn.ServerName())
	}
	p.p = rp
	return p, nil
}

// NewFromEnv creates a pool from the environment alone (see ConfigFromEnv).
func NewFromEnv(ctx context.Context) (*Pool, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return NewWithConfig(ctx, cfg)
}

// Config returns a copy of the configuration the pool was created with.
func (p *Pool) Config() *Config { return p.cfg.Copy() }

// Acquire checks out a connection; Release it when done.
func (p *Pool) Acquire(ctx context.Context) (*Conn, error) {
	c, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	return (*Conn)(c), nil
}

// AcquireFunc runs f with a connection checked out and releases it after.
func (p *Pool) AcquireFunc(ctx context.Context, f func(*Conn) error) error {
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return f(c)
}

// Exec runs sql on a pooled connection. A failure before the statement
// reached the server is retried on another connection (see retry.go).
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var refused bool
	for attempt := 0; ; attempt++ {
		c, err := p.acquire(ctx)
		if err != nil {
			return pgconn.CommandTag{}, err
		}
		tag, err := c.Value().Pgx.Exec(ctx, sql, args...)
		again := err != nil && p.refusedOnce(ctx, c, err, &refused)
		c.Release()
		if err == nil || !again && !retryable(ctx, err, attempt) {
			return tag, err
		}
	}
}

// Query runs sql on a pooled connection; the connection returns to the
// pool when the rows are closed (or fully read).
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	var refused bool
	for attempt := 0; ; attempt++ {
		c, err := p.acquire(ctx)
		if err != nil {
			return errRows{err: err}, err
		}
		rows, err := c.Value().Pgx.Query(ctx, sql, args...)
		if err == nil {
			return c.Value().newRows(rows, c), nil
		}
		again := p.refusedOnce(ctx, c, err, &refused)
		c.Release()
		if !again && !retryable(ctx, err, attempt) {
			return errRows{err: err}, err
		}
	}
}

// QueryRow runs sql on a pooled connection at once, as pgxpool's does;
// its errors, and the row, come with Scan, which returns the connection
// to the pool. A failure before the query reached the server is retried
// on another connection, and so, once, is a query the server refused
// without running it (see retry.go), its error seen by Scan.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return p.queryRow(ctx, sql, args, false)
}

// queryRow is QueryRow; refused says the query ran once more already,
// the server having refused it without running it.
func (p *Pool) queryRow(ctx context.Context, sql string, args []any, refused bool) pgx.Row {
	for attempt := 0; ; attempt++ {
		c, err := p.acquire(ctx)
		if err != nil {
			return errRow{err: err}
		}
		rows, err := c.Value().Pgx.Query(ctx, sql, args...)
		if err != nil && retryable(ctx, err, attempt) {
			rows.Close()
			c.Release()
			continue
		}
		pc := c.Value()
		r := pc.newRow(rows, c)
		if !refused {
			pc.rowQuery, r.again = rowQuery{p: p, ctx: ctx, sql: sql, args: args}, true
		}
		return r
	}
}

// SendBatch sends b on a pooled connection; the connection returns to the
// pool when the results are closed.
func (p *Pool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	c, err := p.acquire(ctx)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	br := c.Value().Pgx.SendBatch(ctx, b)
	if tx := br.Tx(); tx != nil {
		return &poolBatchResults{BatchResults: br, tx: &Tx{t: tx, c: c}}
	}
	return &poolBatchResults{BatchResults: br, c: c}
}

// Begin starts a transaction on a pooled connection; the connection
// returns to the pool on Commit or Rollback.
func (p *Pool) Begin(ctx context.Context) (pgx.Tx, error) {
	return p.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx is Begin with options.
func (p *Pool) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	for attempt := 0; ; attempt++ {
		c, err := p.acquire(ctx)
		if err != nil {
			return nil, err
		}
		tx, err := c.Value().Pgx.BeginTx(ctx, opts)
		if err == nil {
			return &Tx{t: tx, c: c}, nil
		}
		c.Release()
		if !retryable(ctx, err, attempt) {
			return nil, err
		}
	}
}

// CopyFrom runs COPY FROM on a pooled connection.
func (p *Pool) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	c, err := p.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	return c.Value().Pgx.CopyFrom(ctx, table, columns, src)
}

// Ping acquires a connection and checks that the server answers.
func (p *Pool) Ping(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		c, err := p.acquire(ctx)
		if err != nil {
			return err
		}
		err = c.Value().Pgx.Ping(ctx)
		c.Release()
		if err == nil || !retryable(ctx, err, attempt) {
			return err
		}
	}
}

// Close drains the pool within Config.Pool.DrainTimeout and closes it.
func (p *Pool) Close() {
	p.p.Close()
	p.connector.Release()
}

// Shutdown drains the pool within ctx; see runpool.Pool.Shutdown.
func (p *Pool) Shutdown(ctx context.Context) (runpool.DrainReport, error) {
	rep, err := p.p.Shutdown(ctx)
	p.connector.Release()
	return rep, err
}

// Stat is a snapshot of a pool's state and counters, with the methods of
// *pgxpool.Stat and runpool's own counts.
type Stat = runpool.Stat

// Stat returns a snapshot of the pool's state and counters.
func (p *Pool) Stat() *Stat { return p.p.Stat() }

// ErrClosed is returned by every method of a closed pool.
var ErrClosed = runpool.ErrClosed
