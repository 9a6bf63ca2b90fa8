package sqladapter

import "time"

// peekAfterIdle: a connection back in use within this long is not looked
// at. A session the server ends in such a window fails its next statement
// as it would with pgx's stdlib driver (which checks only after 1 s); the
// look costs a system call, a twentieth of a SELECT 1.
const peekAfterIdle = int64(time.Millisecond)

// sockState is what a look at an idle connection's socket found.
type sockState uint8

const (
	sockQuiet   sockState = iota // nothing to read: as an idle session should be
	sockPending                  // bytes waiting: a notice, a notification or a FATAL error
	sockClosed                   // the server closed or reset the connection
)

// gone reports whether an idle connection is known dead without a round
// trip: the server closed it, or what it sent unasked was a FATAL error
// (pg_terminate_backend, server shutdown, idle_session_timeout). A notice
// or notification is read and kept by pgx as usual.
func (c *DriverConn) gone() bool {
	if nanotime()-c.releasedAt < peekAfterIdle {
		return false
	}
	// A few messages may wait (notices before the FATAL); read a bounded
	// number of them. The bytes are there, so each read does not wait.
	for range 8 {
		switch c.live.look() {
		case sockQuiet:
			return false
		case sockClosed:
			return true
		}
		if c.pg.PgConn().CheckConn() != nil || c.pg.IsClosed() {
			return true
		}
	}
	return false
}
