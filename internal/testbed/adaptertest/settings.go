package adaptertest

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/pgxconn"
)

// CheckSettings reports what an adapter would derive from a pool setting
// that Validate accepted and that does not hold as set: a server setting
// in the startup packet that is not a positive 32-bit integer, kernel
// keepalives beyond Linux's limits, or a socket whose TCP_USER_TIMEOUT
// differs from the setting (truncated to 32 bits). It opens one socket
// on the loopback interface.
func CheckSettings(cc *pgx.ConnConfig, pool runpool.Config) error {
	if err := pool.Validate(); err != nil {
		return nil // refused: nothing is derived
	}
	s := pgxconn.Setup(cc, pool)
	for _, k := range []string{"tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count"} {
		v, ok := s.ConnConfig().RuntimeParams[k]
		if !ok || cc.RuntimeParams[k] != "" {
			continue // not sent, or the user's own
		}
		if n, err := strconv.ParseInt(v, 10, 32); err != nil || n < 1 {
			return fmt.Errorf("startup parameter %s=%q is not a positive 32-bit integer", k, v)
		}
	}
	d := pgxconn.Dialer(pool)
	if ka := d.KeepAliveConfig; ka.Idle > 32767*time.Second || ka.Interval > 32767*time.Second || ka.Count > 127 {
		return fmt.Errorf("kernel keepalive %+v beyond Linux's limits", ka)
	}
	if pool.TCPUserTimeout <= 0 {
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	conn, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("dial with TCPUserTimeout %v: %w", pool.TCPUserTimeout, err)
	}
	defer conn.Close()
	got, err := userTimeout(conn)
	if err != nil {
		return err
	}
	if want := pool.TCPUserTimeout / time.Millisecond; got >= 0 && time.Duration(got) != want {
		return fmt.Errorf("TCP_USER_TIMEOUT %d ms on the socket, want %d ms", got, want)
	}
	return nil
}
