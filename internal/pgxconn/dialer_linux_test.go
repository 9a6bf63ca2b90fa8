package pgxconn_test

import (
	"context"
	"maps"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/pgxconn"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
)

// The dialer's sockets carry the keepalive and TCP_USER_TIMEOUT settings.
func TestDialerSocketOptions(t *testing.T) {
	cfg := runpool.Config{TCPKeepAliveIdle: 7 * time.Second, TCPKeepAliveInterval: 3 * time.Second, TCPKeepAliveCount: 4, TCPUserTimeout: 9 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := pgxconn.Dialer(cfg).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := adaptertest.SocketOptions(c.(syscall.Conn))
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 7, "TCP_KEEPINTVL": 3, "TCP_KEEPCNT": 4, "TCP_USER_TIMEOUT": 9000}
	if err != nil || !maps.Equal(got, want) {
		t.Errorf("socket options %v (%v), want %v", got, err, want)
	}
}
