package pgxconn

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/sockpeek"
)

// Conn is one server connection as runpool pools it, for either adapter:
// the pgx connection and the look at its socket. An adapter's connection
// type embeds it (see Pooled); only the holder of its checkout uses it.
type Conn struct {
	// Pgx is the connection, open for the Conn's whole life.
	Pgx  *pgx.Conn
	sock sockpeek.Socket // the look on checkout (gone)
}

// Pooled is an adapter's connection type: a pointer to a struct that
// embeds Conn, with what the adapter keeps beside it.
type Pooled interface{ pooled() *Conn }

func (c *Conn) pooled() *Conn { return c }

// errClosedByServer: the checkout probe found the session already ended.
var errClosedByServer = errors.New("runpool: connection closed by the server")

// gone reports, without sending anything, that the server closed the
// connection or ended its session. A few pending messages (notices
// before a FATAL) are read through pgx, which handles them as usual; the
// bytes are there, so the reads do not wait.
func (c *Conn) gone() bool {
	for range 8 {
		switch c.sock.Look() {
		case sockpeek.Quiet:
			return false
		case sockpeek.Closed:
			return true
		}
		if c.Pgx.PgConn().CheckConn() != nil || c.Pgx.IsClosed() {
			return true
		}
	}
	return false
}

// ping is the checkout probe: a look at the socket, then a round trip
// bounded by ctx. pgx closes the connection when ctx's deadline
// interrupts the round trip; the pool then destroys it as dead, which
// closes the socket at once.
func (c *Conn) ping(ctx context.Context) error {
	if c.gone() {
		return errClosedByServer
	}
	if held, ok := slotOf(c.Pgx); ok {
		return c.slotProbe(ctx, held)
	}
	return c.Pgx.PgConn().Ping(ctx)
}

// reusable reports whether c may go back to the idle list: open, not
// busy and outside any transaction.
func (c *Conn) reusable() bool {
	p := c.Pgx.PgConn()
	return !p.IsClosed() && !p.IsBusy() && p.TxStatus() == 'I'
}

// closeTimeout bounds the goodbye to a live server: writing Terminate to
// a healthy socket takes microseconds, and the pool slot waits for it.
const closeTimeout = time.Second

// close closes c; dead: nobody will read a Terminate, so the socket is
// freed at once, which also ends any cleanup pgx began in the background.
func (c *Conn) close(dead bool) {
	if dead {
		_ = c.Pgx.PgConn().Conn().Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = c.Pgx.Close(ctx)
}

// interruption is what c's socket showed of the last interruption by its
// caller's context (interruptionOf).
func (c *Conn) interruption() runpool.Interruption { return interruptionOf(c.Pgx.PgConn()) }
