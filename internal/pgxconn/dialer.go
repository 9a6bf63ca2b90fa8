package pgxconn

import (
	"net"
	"syscall"

	"github.com/runpool/runpool"
)

// Dialer returns the dialer runpool's connections are opened with, from
// pool's socket settings: kernel keepalives shorter than any middlebox's
// idle timeout (the kernel sends them even while the platform freezes the
// process) and TCP_USER_TIMEOUT, so a write into a black hole fails in
// bounded time instead of after the kernel's 15-minute retransmission
// limit.
func Dialer(pool runpool.Config) *net.Dialer {
	pool = withDefaults(pool)
	d := &net.Dialer{
		Timeout: pool.DialTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   pool.TCPKeepAliveIdle > 0,
			Idle:     pool.TCPKeepAliveIdle,
			Interval: pool.TCPKeepAliveInterval,
			Count:    pool.TCPKeepAliveCount,
		},
	}
	if ut := pool.TCPUserTimeout; ut > 0 {
		d.Control = func(network, _ string, rc syscall.RawConn) error {
			if network != "tcp" && network != "tcp4" && network != "tcp6" {
				return nil
			}
			var serr error
			err := rc.Control(func(fd uintptr) { serr = setUserTimeout(fd, ut) })
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d
}
