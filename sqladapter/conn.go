package sqladapter

import (
	"context"
	"database/sql/driver"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/sockpeek"
)

// DriverConn is the driver.Conn that database/sql holds: one per pooled
// connection, kept for the connection's life, so a checkout allocates
// nothing here. Every call goes to pgx's stdlib driver connection, except
// Close, which returns the connection to runpool instead of closing it.
//
// Code that reached pgx through sql.Conn.Raw with a type assertion to
// *stdlib.Conn asserts interface{ Conn() *pgx.Conn } instead, which both
// this type and *stdlib.Conn satisfy.
type DriverConn struct {
	sc    *stdlib.Conn
	pg    *pgx.Conn
	sock  sockpeek.Socket // the look at the socket on checkout (source.Gone)
	stmts stmts           // statements prepared on the connection, kept across checkouts
	// described: statements are described, never prepared by name (pooler.go)
	described bool

	// held is the runpool checkout database/sql holds now; nil while the
	// connection is idle in runpool. Set by Connector.Connect, cleared by
	// Close; database/sql orders the two.
	held *runpool.Conn[*DriverConn]
}

// Compile-time checks: every optional interface pgx's stdlib conn has,
// plus Validator.
var (
	_ driver.Conn               = (*DriverConn)(nil)
	_ driver.ConnPrepareContext = (*DriverConn)(nil)
	_ driver.ConnBeginTx        = (*DriverConn)(nil)
	_ driver.ExecerContext      = (*DriverConn)(nil)
	_ driver.QueryerContext     = (*DriverConn)(nil)
	_ driver.Pinger             = (*DriverConn)(nil)
	_ driver.NamedValueChecker  = (*DriverConn)(nil)
	_ driver.SessionResetter    = (*DriverConn)(nil)
	_ driver.Validator          = (*DriverConn)(nil)
)

// Conn returns the underlying *pgx.Conn, as (*stdlib.Conn).Conn does. Do
// not keep it past the database/sql call that exposed it.
func (c *DriverConn) Conn() *pgx.Conn { return c.pg }

// Close returns the connection to runpool, which closes it instead when it
// is broken, inside a transaction, past its lifetime or draining.
func (c *DriverConn) Close() error {
	h := c.held
	if h == nil {
		return nil
	}
	c.held = nil // before Release: another checkout may take c at once
	h.Release()
	return nil
}

// Prepare prepares a statement (see PrepareContext).
func (c *DriverConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// Begin starts a transaction (see BeginTx).
func (c *DriverConn) Begin() (driver.Tx, error) {
	return c.sc.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx starts a transaction as pgx's stdlib driver does.
func (c *DriverConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.sc.BeginTx(ctx, opts)
}

// ExecContext runs a statement as pgx's stdlib driver does: an error before
// any byte reached the server is driver.ErrBadConn, so database/sql retries.
func (c *DriverConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.sc.ExecContext(ctx, query, args)
}

// QueryContext runs a query as pgx's stdlib driver does, except that an
// error before any byte reached the server is always driver.ErrBadConn, so
// database/sql retries (pgx's stdlib misses the case where the failure
// shows only when it reads the first row).
func (c *DriverConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := c.sc.QueryContext(ctx, query, args)
	if err != nil {
		return nil, retryable(err)
	}
	return rows, nil
}

// retryable marks err as driver.ErrBadConn when nothing reached the
// server, keeping err for the message if database/sql runs out of retries.
func retryable(err error) error {
	if err != driver.ErrBadConn && pgconn.SafeToRetry(err) {
		return &badConnError{err}
	}
	return err
}

// badConnError is a failure before anything was sent: database/sql
// retries it as driver.ErrBadConn.
type badConnError struct{ err error }

func (e *badConnError) Error() string { return e.err.Error() }

// Unwrap returns driver.ErrBadConn and the cause.
func (e *badConnError) Unwrap() []error { return []error{driver.ErrBadConn, e.err} }

// Ping checks that the server answers.
func (c *DriverConn) Ping(ctx context.Context) error { return c.sc.Ping(ctx) }

// CheckNamedValue accepts every argument: pgx encodes its own types,
// driver.Valuer and sql.Scanner natively.
func (c *DriverConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.sc.CheckNamedValue(nv)
}

// ResetSession runs only when database/sql was allowed to keep idle
// connections itself (SetMaxIdleConns above 0); it then checks the
// connection as pgx's stdlib driver does.
func (c *DriverConn) ResetSession(ctx context.Context) error { return c.sc.ResetSession(ctx) }

// IsValid reports whether the connection may be reused: open, not busy and
// outside any transaction.
func (c *DriverConn) IsValid() bool { return reusable(c.pg) }

func reusable(pg *pgx.Conn) bool {
	pc := pg.PgConn()
	return !pc.IsClosed() && !pc.IsBusy() && pc.TxStatus() == 'I'
}
