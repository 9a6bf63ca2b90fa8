package runpool

import (
	"context"
	"time"
)

// Connector is what a [Pool] needs from a driver. The adapters implement it
// for *pgx.Conn and for pgx's database/sql driver connection; tests and
// other drivers may implement it too.
type Connector[C any] interface {
	// Connect opens a new connection within ctx.
	Connect(ctx context.Context) (C, error)
	// Ping proves that c still reaches a live server, within ctx. It is the
	// checkout probe: it should fail fast on a connection the server or a
	// middlebox already closed, and must honour ctx's deadline.
	Ping(ctx context.Context, c C) error
	// Reusable reports, without I/O, whether c may go back to the idle
	// list: open, not busy, outside any transaction.
	Reusable(c C) bool
	// Cancel asks the server to cancel whatever c is running (the drain's
	// last step), within ctx.
	Cancel(ctx context.Context, c C) error
	// Close tears c down. dead reports that the pool knows c is unusable,
	// so Close must not wait for a goodbye the server will never read.
	Close(c C, dead bool)
}

// GoneChecker is an optional interface for a Connector: Gone reports,
// without sending anything, that the server already closed c or ended its
// session (it wrote a FATAL error unasked). The pool asks it on checkout of
// a connection idle a millisecond or more, so a session the server ended a
// moment ago is replaced before a statement is sent on it, where its
// outcome would be unknowable. It must be cheap: one non-blocking system
// call.
type GoneChecker[C any] interface {
	Gone(c C) bool
}

// peekAfterIdle: connections back in use within this long are not looked
// at (GoneChecker); the look costs a system call, a twentieth of a SELECT
// 1 round trip.
const peekAfterIdle = time.Millisecond

// InterruptWitness is an optional interface for a Connector that can tell
// a connection its caller gave up on from one that failed. When a
// caller's context ends a statement mid-way (a deadline, a cancel), the
// driver closes the connection, on a healthy path as on a dead one; the
// pool asks Interruption of every connection that comes back unusable,
// and instead of condemning the connection's idle siblings at once it
// waits a little for the server's answer (see interruptVerdict).
type InterruptWitness[C any] interface {
	Interruption(c C) Interruption
}

// Interruption is what a connection's socket showed of its caller's
// context cutting its I/O short. After the cut, pgx sends the server a
// cancel request and a goodbye (Terminate) and reads until the server
// closes the connection: a healthy server does so within a few round
// trips, while on a path that died (a NAT that forgot the flow, a
// failover) the answer never comes.
type Interruption struct {
	// At is when the context's deadline cut the connection's I/O short;
	// zero when the connection broke otherwise (a reset, the server
	// closing it, a FATAL error) or not at all.
	At time.Time
	// Answered is when the server then answered on the connection (sent
	// bytes it had not sent before the cut, or closed it in an orderly
	// way); zero while it has not.
	Answered time.Time
	// Failed is when, after At and before any answer, the connection
	// was reset, timed out in the kernel, had its session ended by the
	// server (a FATAL error) or was closed on this side; zero while not.
	Failed time.Time
	// Settled delivers, once, the Interruption with Answered or Failed
	// set (and Settled nil).
	Settled <-chan Interruption
}
