package runpool

import "context"

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
