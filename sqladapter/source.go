package sqladapter

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/cloudsqldial"
	"github.com/runpool/runpool/internal/pgxconn"
	"github.com/runpool/runpool/internal/sockpeek"
	"github.com/runpool/runpool/rdsiam"
)

// source opens and closes the connections runpool pools: pgx's stdlib
// driver connections, each with what this package keeps beside it.
type source struct {
	session *pgxconn.Session // dialer and per-session settings
	// described: behind a transaction-mode pooler, statements are
	// described, never prepared by name (pooler.go)
	described bool
	iam       *rdsiam.Auth // Config.RDSIAM: each dial's password is its token
	live      atomic.Int64 // connections open
	// retired holds, once the Connector closed, the Cloud SQL dialer
	// share to release when the last connection closes.
	retired atomic.Pointer[cloudsqldial.Handle]
}

// retire releases h when no connection is open any more: at once, or as
// the last one closes (Close). Releasing it earlier would cut the
// connections still borrowed (cloudsqldial.Handle.Release).
func (s *source) retire(h *cloudsqldial.Handle) {
	if h == nil {
		return
	}
	s.retired.Store(h)
	s.releaseIfIdle()
}

func (s *source) releaseIfIdle() {
	if s.live.Load() == 0 {
		if h := s.retired.Load(); h != nil {
			h.Release()
		}
	}
}

func (s *source) Connect(ctx context.Context) (*pooled, error) {
	cc := s.session.ConnConfig().Copy()
	pgxconn.Watch(&cc.Config)
	dc, err := rdsiam.Connect(ctx, s.iam, cc, connectStdlib)
	if err != nil {
		s.session.DialFailed(err)
		return nil, err
	}
	sc, ok := dc.(*stdlib.Conn)
	if !ok {
		_ = dc.Close()
		return nil, fmt.Errorf("sqladapter: pgx stdlib returned a %T, not a *stdlib.Conn", dc)
	}
	s.live.Add(1)
	c := &pooled{sc: sc, pg: sc.Conn()}
	c.described = s.described
	c.sock.Init(c.pg.PgConn().Conn())
	return c, nil
}

// Gone reports, without sending anything, that the server closed the
// connection or ended its session (runpool.GoneChecker). A few pending
// messages (notices before a FATAL) are read through pgx, which handles
// them as usual; the bytes are there, so the reads do not wait.
func (s *source) Gone(c *pooled) bool {
	for range 8 {
		switch c.sock.Look() {
		case sockpeek.Quiet:
			return false
		case sockpeek.Closed:
			return true
		}
		if c.pg.PgConn().CheckConn() != nil || c.pg.IsClosed() {
			return true
		}
	}
	return false
}

// Ping is the checkout probe: a look at the socket, then a round trip
// bounded by ctx.
func (s *source) Ping(ctx context.Context, c *pooled) error {
	if s.Gone(c) {
		return errClosedByServer
	}
	return c.pg.PgConn().Ping(ctx)
}

// errClosedByServer: the probe found the session already ended.
var errClosedByServer = errors.New("sqladapter: connection closed by the server")

var _ runpool.GoneChecker[*pooled] = (*source)(nil)

func (s *source) ServerLimits(ctx context.Context, c *pooled) (runpool.ServerLimits, error) {
	return pgxconn.ReadLimits(ctx, c.pg)
}

// Session and EndOrphans let the pool end sessions it gave up as dead
// (runpool.OrphanEnder).
func (s *source) Session(c *pooled) (runpool.Orphan, bool) { return pgxconn.SessionOf(c.pg) }

func (s *source) EndOrphans(ctx context.Context, via *pooled, orphans []runpool.Orphan) (int, error) {
	return pgxconn.EndOrphans(ctx, via.pg, orphans)
}

var _ runpool.OrphanEnder[*pooled] = (*source)(nil)

// Interruption tells the pool whether c was closed by its caller's
// context, and whether the server answered after (runpool.InterruptWitness).
func (s *source) Interruption(c *pooled) runpool.Interruption {
	return pgxconn.InterruptionOf(c.pg.PgConn())
}

var _ runpool.InterruptWitness[*pooled] = (*source)(nil)

// Parks tells runpool that the shells park connections (DriverConn).
func (s *source) Parks() bool { return true }

var _ runpool.Parker = (*source)(nil)

func (s *source) Reusable(c *pooled) bool { return reusable(c.pg) }

func (s *source) Cancel(ctx context.Context, c *pooled) error {
	return c.pg.PgConn().CancelRequest(ctx)
}

// closeTimeout bounds the goodbye to a live server, which takes
// microseconds; the pool slot waits for it.
const closeTimeout = time.Second

func (s *source) Close(c *pooled, dead bool) {
	if dead {
		// Nobody will read a Terminate; free the socket now.
		_ = c.pg.PgConn().Conn().Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = c.pg.Close(ctx)
	s.live.Add(-1)
	s.releaseIfIdle()
}
