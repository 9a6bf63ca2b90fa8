// Package sockpeek looks at an idle connection's socket without blocking
// and without sending: has the server closed it, or written to it unasked?
// PostgreSQL writes a FATAL error before it ends a session on its own
// (pg_terminate_backend, shutdown, idle_session_timeout), so a checkout can
// tell such a connection is dead without a round trip and before any
// statement is sent on it (which would make the statement's outcome
// unknowable).
package sockpeek

import (
	"crypto/tls"
	"net"
	"syscall"
)

// State is what a look found.
type State uint8

const (
	// Quiet: nothing to read, as an idle session should be.
	Quiet State = iota
	// Pending: bytes wait: a notice, a notification or a FATAL error.
	Pending
	// Closed: the server closed or reset the connection.
	Closed
)

// Socket looks at one socket. Its zero value reports Quiet; Init binds
// it. Not safe for concurrent use: only the connection's holder looks.
type Socket struct {
	raw   syscall.RawConn  // nil when the socket cannot be reached
	peek  func(fd uintptr) // bound once, so a look allocates nothing
	n     uintptr          // result of the last peek
	errno syscall.Errno    // result of the last peek
	buf   [1]byte
}

// Init binds s to nc's socket (under TLS, the TCP socket beneath: bytes
// waiting there still mean the server spoke).
func (s *Socket) Init(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	s.raw = raw
	s.peek = s.recvPeek
}

// Look reports the socket's state. It costs one non-blocking system call
// and never waits: it runs under Control, not Read, because RawConn.Read
// takes the descriptor's read lock, which another goroutine may hold while
// parked in a blocking read (pgconn's background reader stays parked on an
// idle connection after a query), and Look would wait for the next byte.
func (s *Socket) Look() State {
	if s.raw == nil {
		return Quiet
	}
	if err := s.raw.Control(s.peek); err != nil {
		return Closed // the descriptor is closed already
	}
	switch {
	case s.errno == syscall.EAGAIN:
		return Quiet
	case s.errno != 0:
		return Closed // reset, or another error the next read would get
	case s.n == 0:
		return Closed // the server's FIN, with nothing before it
	default:
		return Pending
	}
}

// Bound reports whether Init reached a socket: Look can tell only then.
func (s *Socket) Bound() bool { return s.raw != nil }
