package pgxadapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/pgxconn"
	"github.com/runpool/runpool/internal/sockpeek"
	"github.com/runpool/runpool/rdsiam"
)

// pconn is what the pool holds: a pgx connection and what it takes to look
// at its socket without allocating.
type pconn struct {
	conn *pgx.Conn
	sock sockpeek.Socket
	// rowBuf and rowsBuf hold the wrappers Pool.QueryRow and Pool.Query
	// hand out on this connection, allocated 64 at a time as pgxpool's
	// are; only the caller holding the connection touches them.
	rowBuf  []poolRow
	rowsBuf []poolRows
}

// newRow returns a poolRow from pc's buffer.
func (pc *pconn) newRow(rows pgx.Rows, c *runpool.Conn[*pconn]) *poolRow {
	if len(pc.rowBuf) == 0 {
		pc.rowBuf = make([]poolRow, 64)
	}
	r := &pc.rowBuf[0]
	pc.rowBuf = pc.rowBuf[1:]
	*r = poolRow{rows: rows, c: c}
	return r
}

// newRows returns a poolRows from pc's buffer.
func (pc *pconn) newRows(rows pgx.Rows, c *runpool.Conn[*pconn]) *poolRows {
	if len(pc.rowsBuf) == 0 {
		pc.rowsBuf = make([]poolRows, 64)
	}
	r := &pc.rowsBuf[0]
	pc.rowsBuf = pc.rowsBuf[1:]
	*r = poolRows{Rows: rows, c: c}
	return r
}

// connector opens and closes connections for runpool.Pool.
type connector struct {
	session       *pgxconn.Session // dialer and per-session settings
	beforeConnect func(context.Context, *pgx.ConnConfig) error
	beforeClose   func(*pgx.Conn)
	iam           *rdsiam.Auth // nil: the password as configured
}

// newConnector returns the connector for session with cfg's BeforeConnect
// and BeforeClose hooks.
func newConnector(session *pgxconn.Session, cfg *Config) *connector {
	return &connector{session: session, beforeConnect: cfg.BeforeConnect, beforeClose: cfg.BeforeClose, iam: cfg.RDSIAM}
}

func (c *connector) Connect(ctx context.Context) (*pconn, error) {
	cc := c.session.ConnConfig().Copy()
	if c.beforeConnect != nil {
		if err := c.beforeConnect(ctx, cc); err != nil {
			return nil, fmt.Errorf("pgxadapter: BeforeConnect: %w", err)
		}
	}
	pgxconn.Watch(&cc.Config)
	conn, err := rdsiam.Connect(ctx, c.iam, cc, pgx.ConnectConfig)
	if err != nil {
		c.session.DialFailed(err)
		return nil, err
	}
	if err := c.session.AfterConnect(ctx, conn); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	pc := &pconn{conn: conn}
	pc.sock.Init(conn.PgConn().Conn())
	return pc, nil
}

// Gone reports, without sending anything, that the server closed the
// connection or ended its session: a few pending messages (notices before
// a FATAL) are read through pgx so that it sees them as usual.
func (c *connector) Gone(pc *pconn) bool {
	for range 8 {
		switch pc.sock.Look() {
		case sockpeek.Quiet:
			return false
		case sockpeek.Closed:
			return true
		}
		if pc.conn.PgConn().CheckConn() != nil || pc.conn.IsClosed() {
			return true
		}
	}
	return false
}

// Ping is the checkout probe: a look at the socket, then a round trip
// bounded by ctx. pgx closes the connection when ctx's deadline
// interrupts the round trip; the pool then destroys it as dead, which
// closes the socket at once.
func (c *connector) Ping(ctx context.Context, pc *pconn) error {
	if c.Gone(pc) {
		return errClosedByServer
	}
	return pc.conn.PgConn().Ping(ctx)
}

func (c *connector) ServerLimits(ctx context.Context, pc *pconn) (runpool.ServerLimits, error) {
	return pgxconn.ReadLimits(ctx, pc.conn)
}

// Session and EndOrphans let the pool end sessions it gave up as dead
// (runpool.OrphanEnder).
func (c *connector) Session(pc *pconn) (runpool.Orphan, bool) { return pgxconn.SessionOf(pc.conn) }

func (c *connector) EndOrphans(ctx context.Context, via *pconn, orphans []runpool.Orphan) (int, error) {
	return pgxconn.EndOrphans(ctx, via.conn, orphans)
}

var _ runpool.OrphanEnder[*pconn] = (*connector)(nil)

// Interruption tells the pool whether pc was closed by its caller's
// context, and whether the server answered after (runpool.InterruptWitness).
func (c *connector) Interruption(pc *pconn) runpool.Interruption {
	return pgxconn.InterruptionOf(pc.conn.PgConn())
}

var _ runpool.InterruptWitness[*pconn] = (*connector)(nil)

func (c *connector) Reusable(pc *pconn) bool {
	p := pc.conn.PgConn()
	return !p.IsClosed() && !p.IsBusy() && p.TxStatus() == 'I'
}

func (c *connector) Cancel(ctx context.Context, pc *pconn) error {
	return pc.conn.PgConn().CancelRequest(ctx)
}

// closeTimeout bounds the goodbye to a live server: writing Terminate to a
// healthy socket takes microseconds, and the pool slot waits for it.
const closeTimeout = time.Second

func (c *connector) Close(pc *pconn, dead bool) {
	if c.beforeClose != nil {
		c.beforeClose(pc.conn)
	}
	if dead {
		// Nobody will read a Terminate; free the socket now. This also
		// ends at once any cleanup pgx began in the background.
		_ = pc.conn.PgConn().Conn().Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = pc.conn.Close(ctx)
}

// errClosedByServer: the probe found the session already ended.
var errClosedByServer = errors.New("runpool: connection closed by the server")
