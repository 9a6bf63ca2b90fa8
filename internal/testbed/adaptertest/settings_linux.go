package adaptertest

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// userTimeout reads TCP_USER_TIMEOUT (milliseconds) from conn's socket.
func userTimeout(conn net.Conn) (int, error) {
	o, err := SocketOptions(conn.(*net.TCPConn))
	return o["TCP_USER_TIMEOUT"], err
}

// SocketOptions reads, by name, the options runpool's dialer sets on c's
// socket: SO_KEEPALIVE, TCP_KEEPIDLE and TCP_KEEPINTVL (seconds),
// TCP_KEEPCNT and TCP_USER_TIMEOUT (milliseconds).
func SocketOptions(c syscall.Conn) (map[string]int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	opts := []struct {
		name       string
		level, opt int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
		{"TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
	}
	got := make(map[string]int, len(opts))
	var gerr error
	err = rc.Control(func(fd uintptr) {
		for _, o := range opts {
			v, err := unix.GetsockoptInt(int(fd), o.level, o.opt)
			if err != nil {
				gerr = err
				return
			}
			got[o.name] = v
		}
	})
	if err != nil {
		return nil, err
	}
	return got, gerr
}
