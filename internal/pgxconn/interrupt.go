package pgxconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/sockpeek"
)

// watch has cc's connections dial through a witness of their
// interruptions (see interruptionOf): it wraps cc.DialFunc, whatever set
// it (runpool's dialer, the Cloud SQL connector, a BeforeConnect hook),
// and cc.OnPgError, to see the server end the session. Call it on the
// copy each connection is dialled with, last.
//
// pgx dials its cancel requests with the connection's own DialFunc, so a
// later call of the wrapper is one of those: it is refused while the
// connection's socket is quiet (see probing).
func watch(cc *pgconn.Config) {
	dial := cc.DialFunc
	var own atomic.Pointer[watched] // the connection's socket, once dialled
	cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if w := own.Load(); w != nil && w.quiet.Load() {
			return nil, errNoCancelForProbe
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		w := &watched{Conn: c}
		w.sock.Init(c)
		own.Store(w)
		return w, nil
	}
	onErr := cc.OnPgError
	cc.OnPgError = func(pc *pgconn.PgConn, e *pgconn.PgError) bool {
		sev := e.SeverityUnlocalized
		if sev == "" {
			sev = e.Severity
		}
		if strings.EqualFold(sev, "FATAL") || strings.EqualFold(sev, "PANIC") {
			if w := watchedOf(pc); w != nil {
				w.fail()
			}
		}
		return onErr == nil || onErr(pc, e)
	}
}

// interruptionOf returns what pc's socket showed of the last interruption
// by its caller's context (runpool.InterruptWitness): the zero
// Interruption when the connection's last failure was no interruption,
// when it saw none, or when it was not dialled through watch.
func interruptionOf(pc *pgconn.PgConn) runpool.Interruption {
	w := watchedOf(pc)
	if w == nil {
		return runpool.Interruption{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken || w.cut == nil {
		return runpool.Interruption{}
	}
	return w.cut.in
}

// errNoCancelForProbe is the dial error of a cancel request not sent:
// pgx ignores it.
var errNoCancelForProbe = errors.New("pgxconn: no cancel request for a probe")

// probing marks pc's socket quiet for the probe that starts, and returns
// it (nil when pc was not dialled through watch): when the probe fails,
// pgx gives the connection up with a cancel request on a connection of
// its own, which would cost the server a process and a path a new flow,
// for a ping with nothing to cancel, at the moment a burst after a
// freeze needs both for its dials. probed ends the mark once the probe
// succeeded; a failed probe leaves it, since pgx sends its cancel
// request after the probe returned.
func probing(pc *pgconn.PgConn) *watched {
	w := watchedOf(pc)
	if w != nil {
		w.quiet.Store(true)
	}
	return w
}

// probed ends the mark probing set on w, whose probe succeeded.
func (w *watched) probed() {
	if w != nil {
		w.quiet.Store(false)
	}
}

// watchedOf finds pc's watched socket beneath TLS; nil when there is none.
func watchedOf(pc *pgconn.PgConn) *watched {
	nc := pc.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	w, _ := nc.(*watched)
	return w
}

// watched is a connection's socket as pgx reads and writes it, beneath
// TLS. pgx answers a context that ends mid-statement with a deadline on
// the socket: an I/O error that is that deadline marks an interruption
// (a cut). When pgx then gives up on the connection, it sends a cancel
// request on a connection of its own and Terminate on this one, and
// reads until the server closes it. Bytes from the server after the cut
// answer (a healthy server sends the cancelled statement's error, then
// closes), unless bytes already waited at the cut, which the server sent
// before it: then only its close answers (beneath TLS its goodbye ends
// pgx's reading before the close is read here, so such a cut fails when
// pgx closes the socket: a conservative verdict). A reset, a kernel timeout or a
// close on this side first fails the cut; silence is for the pool to
// judge. pgx also goes on with a connection after some cuts (CheckConn,
// a notification's wait): the last cut is the one reported, unless a
// failure of another kind (a reset, the server ending the session)
// followed it.
type watched struct {
	net.Conn
	sock sockpeek.Socket // to tell, at a cut, whether bytes already waited
	// pending is set while the last cut awaits its answer: a read takes
	// the lock only then.
	pending atomic.Bool
	// quiet is set while the pool probes the connection, and stays set
	// when the probe fails: no cancel request is sent for it (see
	// probing).
	quiet atomic.Bool

	mu     sync.Mutex // guards what follows
	cut    *cut       // the last cut; nil before the first
	broken bool       // a failure of another kind followed the last cut
}

// cut is one interruption.
type cut struct {
	in      runpool.Interruption      // Settled is done
	done    chan runpool.Interruption // delivers in once settled
	stale   bool                      // bytes waited at the cut, or whether they did is unknown
	settled bool
}

func (w *watched) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	if err != nil {
		w.failed(err)
	} else if n > 0 {
		w.heard()
	}
	return n, err
}

func (w *watched) Write(b []byte) (int, error) {
	n, err := w.Conn.Write(b)
	if err != nil {
		w.failed(err)
	}
	return n, err
}

// Close is pgx's, once it has given up on the connection (or the pool's,
// for one known dead): a cut not answered by then failed.
func (w *watched) Close() error {
	w.mu.Lock()
	if c := w.cut; c != nil && !c.settled {
		w.settle(c, &c.in.Failed)
	}
	w.mu.Unlock()
	return w.Conn.Close()
}

// SyscallConn reaches the socket beneath (sockpeek looks at it), when
// the dialled connection has one.
func (w *watched) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := w.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// NetConn returns the connection as dialled.
func (w *watched) NetConn() net.Conn { return w.Conn }

// heard notes bytes from the server.
func (w *watched) heard() {
	if !w.pending.Load() {
		return
	}
	w.mu.Lock()
	if c := w.cut; c != nil && !c.settled && !c.stale {
		w.settle(c, &c.in.Answered)
	}
	w.mu.Unlock()
}

// failed notes an I/O error.
func (w *watched) failed(err error) {
	deadline := errors.Is(err, os.ErrDeadlineExceeded)
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.cut
	switch {
	case c != nil && !c.settled:
		switch {
		case errors.Is(err, io.EOF):
			w.settle(c, &c.in.Answered)
		case deadline, errors.Is(err, net.ErrClosed):
			// Silence is for the pool to judge; a close here, Close.
		default:
			w.settle(c, &c.in.Failed)
		}
	case deadline:
		look := sockpeek.Quiet
		if w.sock.Bound() {
			look = w.sock.Look()
		}
		if look == sockpeek.Closed {
			w.broken = true // the server had closed it already
			return
		}
		done := make(chan runpool.Interruption, 1)
		w.cut = &cut{in: runpool.Interruption{At: time.Now(), Settled: done}, done: done,
			stale: !w.sock.Bound() || look == sockpeek.Pending}
		w.broken = false
		w.pending.Store(true)
	case c != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE)), errors.Is(err, net.ErrClosed):
		// The server's close after its answer (its FIN read, or a TLS
		// goodbye written after it); the close on this side.
	default:
		w.broken = true
	}
}

// fail notes that the server ended the session (a FATAL error).
func (w *watched) fail() {
	w.mu.Lock()
	if c := w.cut; c != nil && !c.settled {
		w.settle(c, &c.in.Failed)
	} else {
		w.broken = true
	}
	w.mu.Unlock()
}

// settle sets *at (c.in.Answered or c.in.Failed) and delivers c.in.
func (w *watched) settle(c *cut, at *time.Time) {
	*at = time.Now()
	c.settled = true
	w.pending.Store(false)
	out := c.in
	out.Settled = nil
	c.done <- out
}
