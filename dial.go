package runpool

import (
	"net"
	"syscall"
)

// NetDialer returns the dialer the adapters open TCP connections with:
// kernel keepalives shorter than any middlebox's idle timeout (the kernel
// sends them even while the platform freezes the process) and
// TCP_USER_TIMEOUT, so a write into a black hole fails in bounded time
// instead of after the kernel's 15-minute retransmission limit.
func (c Config) NetDialer() *net.Dialer {
	c = c.withDefaults()
	d := &net.Dialer{
		Timeout: c.DialTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   c.TCPKeepAliveIdle > 0,
			Idle:     c.TCPKeepAliveIdle,
			Interval: c.TCPKeepAliveInterval,
			Count:    c.TCPKeepAliveCount,
		},
	}
	if ut := c.TCPUserTimeout; ut > 0 {
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
