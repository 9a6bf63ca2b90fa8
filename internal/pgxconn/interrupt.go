package pgxconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/sockpeek"
)

// Watch has cc's connections dial through a witness of their
// interruptions (see InterruptionOf): it wraps cc.DialFunc, whatever set
// it (runpool's dialer, the Cloud SQL connector, a BeforeConnect hook).
// Call it on the copy each connection is dialled with, last.
func Watch(cc *pgconn.Config) {
	dial := cc.DialFunc
	cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		w := &watched{Conn: c, settled: make(chan struct{})}
		w.sock.Init(c)
		return w, nil
	}
}

// InterruptionOf returns what pc's socket showed of an interruption by
// its caller's context (runpool.InterruptWitness); the zero Interruption
// when pc was not dialled through Watch or saw none.
func InterruptionOf(pc *pgconn.PgConn) runpool.Interruption {
	nc := pc.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	w, ok := nc.(*watched)
	if !ok {
		return runpool.Interruption{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.in
}

// watched is a connection's socket as pgx reads and writes it, beneath
// TLS. pgx answers a context that ends mid-statement with a deadline on
// the socket; the first I/O error being that deadline marks the
// interruption (At). pgx then closes the connection in the background:
// a cancel request on a connection of its own, Terminate on this one,
// and reads until the server closes it. Bytes from the server after At
// answer (a healthy server sends the cancelled statement's error, then
// closes), unless bytes already waited at At, which the server sent
// before: then only its close answers. A reset, a kernel timeout or a
// close on this side first is a failure; silence is for the pool to
// judge (runpool.Interruption).
type watched struct {
	net.Conn
	sock sockpeek.Socket // to tell, at At, whether bytes already waited

	mu      sync.Mutex // guards what follows
	in      runpool.Interruption
	broken  bool          // the first failure was not a deadline: no interruption
	stale   bool          // at At, bytes waited, or whether they did is unknown
	settled chan struct{} // in.Settled, closed once Answered or Failed is set
}

func (w *watched) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	if n > 0 || err != nil {
		w.saw(n, err)
	}
	return n, err
}

func (w *watched) Write(b []byte) (int, error) {
	n, err := w.Conn.Write(b)
	if err != nil {
		w.saw(0, err)
	}
	return n, err
}

// Close is pgx's, once it has given up on the connection (or the pool's,
// for one known dead): an interruption not answered by then failed.
func (w *watched) Close() error {
	w.mu.Lock()
	if w.pending() {
		w.settle(&w.in.Failed)
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

// saw notes one read of n bytes or one I/O error.
func (w *watched) saw(n int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken {
		return
	}
	if w.in.At.IsZero() {
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			look := sockpeek.Quiet
			if w.sock.Bound() {
				look = w.sock.Look()
			}
			if look == sockpeek.Closed {
				w.broken = true // the server had closed it already
				return
			}
			w.in.At = time.Now()
			w.in.Settled = w.settled
			w.stale = !w.sock.Bound() || look == sockpeek.Pending
		default:
			w.broken = true
		}
		return
	}
	if !w.pending() {
		return
	}
	switch {
	case errors.Is(err, io.EOF) || (n > 0 && !w.stale):
		w.settle(&w.in.Answered)
	case err == nil, errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed):
		// Silence is judged by the pool's grace; a close here by Close.
	default:
		w.settle(&w.in.Failed)
	}
}

func (w *watched) pending() bool {
	return !w.in.At.IsZero() && w.in.Answered.IsZero() && w.in.Failed.IsZero()
}

func (w *watched) settle(at *time.Time) {
	*at = time.Now()
	close(w.settled)
}
