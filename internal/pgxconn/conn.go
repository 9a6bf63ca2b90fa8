package pgxconn

import (
	"context"
	"errors"
	"sync/atomic"
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
	// said notes the server's errors the pool acts on (role.go); writer
	// is the role its server reported at connect time.
	said      *atomic.Uint32
	writer    role
	sawWriter *atomic.Bool // the connector's: a sibling was opened to a writer
	pass      *pass        // the connector's, with budget slots on (pass.go)
	// passWait is how long the connection's dial waited for the pass.
	passWait time.Duration
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
	w := probing(c.Pgx.PgConn())
	var err error
	if held, ok := slotOf(c.Pgx); ok {
		err = c.slotProbe(ctx, held)
	} else if c.pass != nil && c.pass.seeking(c) {
		err = c.seekSlot(ctx)
	} else {
		err = c.Pgx.PgConn().Ping(ctx)
	}
	if err == nil {
		w.probed()
		if c.roleChanged() {
			err = errRoleChanged
		}
	}
	return err
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
