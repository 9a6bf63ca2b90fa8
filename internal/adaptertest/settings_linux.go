package adaptertest

import (
	"net"

	"golang.org/x/sys/unix"
)

// userTimeout reads TCP_USER_TIMEOUT (milliseconds) from conn's socket.
func userTimeout(conn net.Conn) (int, error) {
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) }); err != nil {
		return 0, err
	}
	return v, gerr
}
