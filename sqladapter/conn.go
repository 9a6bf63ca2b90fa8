package sqladapter

import (
	"context"
	"database/sql/driver"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
)

// DriverConn is the driver.Conn that database/sql holds: a shell that
// holds a runpool connection while database/sql uses it, and while
// database/sql keeps it idle parks it (runpool.Conn.Park): the connection
// is back in the pool, which takes it whenever another caller needs it,
// and the shell takes it back on reuse when the pool has not.
//
// database/sql keeps its idle driver.Conns itself and builds a record of
// several allocations for each one it opens. Were each of them a server
// connection it kept, checkouts from database/sql's idle list would skip
// every check runpool makes on checkout (the look at the socket, the
// probe after a freeze, lifetimes, the budget, the drain). So database/sql
// keeps shells: it checks one out of its idle list and calls
// ResetSession, where the shell unparks its connection, which runs the
// checks a checkout makes without I/O, or checks one out of runpool; it
// checks the shell back in and calls IsValid, where the shell parks the
// connection. The shell and database/sql's record of it are kept, so a
// checkout allocates nothing beyond what database/sql allocates with its
// own pool, and the reuse of a parked connection takes no lock.
//
// Every call goes to pgx's stdlib driver connection, so behaviour is that
// driver's. Code that reached pgx through sql.Conn.Raw with a type
// assertion to *stdlib.Conn asserts interface{ Conn() *pgx.Conn } instead,
// which both this type and *stdlib.Conn satisfy.
type DriverConn struct {
	pool *runpool.Pool[*pooled]
	// held is the runpool checkout this shell holds: set by Connect and
	// ResetSession, parked by IsValid, cleared by Close and when the
	// pool took the parked connection back. database/sql calls them and
	// every other method under its lock of the shell, so they need none
	// of their own.
	held *runpool.Conn[*pooled]
	// parked: held is parked (IsValid), not in use.
	parked bool
	// failed is why the last checkout from runpool failed, for the next
	// call to return: database/sql ignores a ResetSession error other
	// than driver.ErrBadConn, and retrying after ErrBadConn would wait
	// again (a deadline, a server away) and lose the cause.
	failed error
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

// conn returns the runpool connection the shell holds, unparking it, or
// checking one out within ctx when it holds none: the pool took the
// parked one back, the checkout in ResetSession failed, or database/sql
// reused the shell without calling it.
func (c *DriverConn) conn(ctx context.Context) (*pooled, error) {
	if h := c.held; h != nil {
		c.parked = false
		if h.Unpark(ctx) { // at once when it is not parked
			return h.Value(), nil
		}
		c.held = nil
	}
	if err := c.failed; err != nil {
		c.failed = nil // the next call checks out again
		return nil, err
	}
	h, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	c.held = h
	return h.Value(), nil
}

// ResetSession takes the shell's connection back, or checks one out of
// runpool, within ctx, the context of the database/sql call that reuses
// the shell. A failure is returned by that call's first use of the shell.
//
// When runpool closed the shell's parked connection as dead (found before
// this call, or by the checkout it made), ResetSession reports
// driver.ErrBadConn, as pgx's stdlib driver does for its dead idle
// connection: database/sql discards the shell and retries on another, so
// db.Stats counts no shell for a connection the server ended. A parked
// connection the pool merely took back (another caller needed it, the
// maintainer's tick) does not end the shell: it checks one out instead.
func (c *DriverConn) ResetSession(ctx context.Context) error {
	c.failed = nil
	var was runpool.ConnRef[*pooled]
	if h := c.held; h != nil && c.parked {
		was = h.Ref()
		c.parked = false
		if h.Unpark(ctx) {
			return nil
		}
		c.held = nil
		if was.Dead() {
			return driver.ErrBadConn
		}
	}
	if _, err := c.conn(ctx); err != nil {
		c.failed = err
		return nil
	}
	if was.Dead() {
		c.release()
		return driver.ErrBadConn
	}
	return nil
}

// IsValid parks the connection as database/sql takes the shell back,
// and reports that the shell may be kept. runpool closes the connection
// instead when it is broken, inside a transaction, past its lifetime or
// draining, and returns it to its idle list when other callers wait.
func (c *DriverConn) IsValid() bool {
	c.park()
	c.failed = nil
	return true
}

// park parks the connection the shell holds, if any; Park keeps a parked
// one parked.
func (c *DriverConn) park() {
	if h := c.held; h != nil {
		c.parked = h.Park()
		if !c.parked {
			c.held = nil
		}
	}
}

// Close returns the connection to runpool: database/sql closes the shell
// instead of keeping it after a driver.ErrBadConn, or when it keeps
// enough idle shells.
func (c *DriverConn) Close() error {
	c.release()
	return nil
}

func (c *DriverConn) release() {
	if h := c.held; h != nil {
		c.held, c.parked = nil, false // before Release: another checkout may take it at once
		h.Release()
	}
}

// Conn returns the underlying *pgx.Conn, as (*stdlib.Conn).Conn does. Do
// not keep it past the database/sql call that exposed it. When the
// checkout that should have given this sql.Conn a connection failed,
// Conn waits for one with no deadline; it returns nil only if runpool is
// closed.
func (c *DriverConn) Conn() *pgx.Conn {
	c.failed = nil
	p, err := c.conn(context.Background())
	if err != nil {
		return nil
	}
	return p.Pgx
}

// Prepare prepares a statement (see PrepareContext).
func (c *DriverConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// Begin starts a transaction (see BeginTx).
func (c *DriverConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx starts a transaction as pgx's stdlib driver does.
func (c *DriverConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	p, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	return p.sc.BeginTx(ctx, opts)
}

// ExecContext runs a statement as pgx's stdlib driver does: an error before
// any byte reached the server is driver.ErrBadConn, so database/sql retries,
// and so is a statement the server refused without running it, outside
// any transaction (a server demoted under the connection, a session it
// ended for idling: pgxconn's Refused). A statement whose result columns
// changed since it was prepared is prepared again and run once more (see
// replan).
func (c *DriverConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	p, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	res, err := p.sc.ExecContext(ctx, query, args)
	if err != nil && p.replan(ctx, query, err) {
		res, err = p.sc.ExecContext(ctx, query, args)
	}
	if err != nil && p.Refused(err) {
		return nil, &badConnError{err}
	}
	return res, err
}

// QueryContext runs a query as pgx's stdlib driver does, except that an
// error before any byte reached the server is always driver.ErrBadConn, so
// database/sql retries (pgx's stdlib misses the case where the failure
// shows only when it reads the first row), and a statement whose result
// columns changed since it was prepared is prepared again and run once
// more (see replan).
func (c *DriverConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	p, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := p.sc.QueryContext(ctx, query, args)
	if err != nil && p.replan(ctx, query, err) {
		rows, err = p.sc.QueryContext(ctx, query, args)
	}
	if err != nil {
		if p.Refused(err) {
			return nil, &badConnError{err}
		}
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
func (c *DriverConn) Ping(ctx context.Context) error {
	p, err := c.conn(ctx)
	if err != nil {
		return err
	}
	return p.sc.Ping(ctx)
}

// CheckNamedValue accepts every argument, as pgx's stdlib driver does: pgx
// encodes its own types, driver.Valuer and sql.Scanner natively.
func (c *DriverConn) CheckNamedValue(*driver.NamedValue) error { return nil }
