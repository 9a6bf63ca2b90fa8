package soak

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/sqladapter"
)

// Error classes a caller may see. Everything else is a violation: an
// error the pool's documentation does not promise.
const (
	classOK       = "ok"
	classDeadline = "deadline"  // the caller's own deadline passed (also *runpool.AcquireError)
	classServer   = "server"    // *pgconn.PgError: the server refused or ended the statement
	classNotSent  = "not-sent"  // pgconn says nothing reached the server; driver.ErrBadConn
	classDial     = "dial"      // *pgconn.ConnectError: no connection could be opened
	classConnLost = "conn-lost" // the connection broke mid-statement: outcome unknown
	classClosed   = "closed"    // runpool.ErrClosed
	classBad      = "UNDOCUMENTED"
)

// classify names the class of err, which the call made under ctx
// returned, and reports whether the error proves the statement did not
// run (so its row must be absent).
func classify(ctx context.Context, err error) (class string, notRun bool) {
	if err == nil {
		return classOK, false
	}
	var pgErr *pgconn.PgError
	isPg := errors.As(err, &pgErr)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		if ctx.Err() == nil {
			// Someone else's deadline (a probe's, a dial's) reached the
			// caller: not a promise the pool makes.
			return classBad, false
		}
		var ae *runpool.AcquireError
		return classDeadline, errors.As(err, &ae) || pgconn.SafeToRetry(err)
	case isPg && pgErr.Code == "53300":
		// 53300 is back-pressure: it may reach the caller only wrapped in
		// *runpool.AcquireError once the caller's deadline passed.
		return classBad, true
	case isPg:
		return classServer, pgErr.Severity != "FATAL" && pgErr.Severity != "PANIC"
	case errors.Is(err, runpool.ErrClosed), errors.Is(err, sqladapter.ErrNotRunpool):
		return classClosed, true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return classDial, true
	}
	if pgconn.SafeToRetry(err) || errors.Is(err, driver.ErrBadConn) {
		return classNotSent, true
	}
	// A pgconn error (they implement SafeToRetry) or the network error
	// pgconn returns as is: the statement may or may not have run.
	var pgconnErr interface{ SafeToRetry() bool }
	var netErr net.Error
	if errors.As(err, &pgconnErr) || errors.As(err, &netErr) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return classConnLost, false
	}
	return classBad, false
}
