package sqladapter

import (
	"crypto/tls"
	"net"
	"syscall"
	"unsafe"
)

// liveness looks at an idle connection's socket without blocking and
// without sending: has the server closed it, or sent something unasked?
type liveness struct {
	raw   syscall.RawConn       // nil when the socket cannot be reached
	peek  func(fd uintptr) bool // bound once, so a look allocates nothing
	n     uintptr               // result of the last peek
	errno syscall.Errno         // result of the last peek
	buf   [1]byte
}

func (l *liveness) init(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn() // bytes waiting under TLS still mean the server spoke
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	l.raw = raw
	l.peek = l.recvPeek
}

func (l *liveness) recvPeek(fd uintptr) bool {
	l.n, _, l.errno = syscall.Syscall6(syscall.SYS_RECVFROM, fd,
		uintptr(unsafe.Pointer(&l.buf[0])), 1, syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return true
}

// look returns what the socket shows.
func (l *liveness) look() sockState {
	if l.raw == nil {
		return sockQuiet
	}
	if err := l.raw.Read(l.peek); err != nil {
		return sockClosed // the fd is closed already
	}
	switch {
	case l.errno == syscall.EAGAIN:
		return sockQuiet
	case l.errno != 0:
		return sockClosed // reset, or another error the next read would get
	case l.n == 0:
		return sockClosed // the server's FIN, nothing before it
	default:
		return sockPending
	}
}
