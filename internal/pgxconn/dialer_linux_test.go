//go:build linux

package pgxconn

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"golang.org/x/sys/unix"
)

// The dialer's sockets carry the keepalive and TCP_USER_TIMEOUT settings.
func TestDialerSocketOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := runpool.Config{TCPKeepAliveIdle: 7 * time.Second, TCPKeepAliveInterval: 3 * time.Second, TCPKeepAliveCount: 4, TCPUserTimeout: 9 * time.Second}
	c, err := Dialer(cfg).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, _ := c.(syscall.Conn).SyscallConn()
	get := func(level, opt int) int {
		var v int
		raw.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), level, opt) })
		return v
	}
	checks := []struct {
		name      string
		got, want int
	}{
		{"SO_KEEPALIVE", get(unix.SOL_SOCKET, unix.SO_KEEPALIVE), 1},
		{"TCP_KEEPIDLE", get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE), 7},
		{"TCP_KEEPINTVL", get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL), 3},
		{"TCP_KEEPCNT", get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT), 4},
		{"TCP_USER_TIMEOUT", get(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT), 9000},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}
