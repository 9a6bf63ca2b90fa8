package pgxconn

import (
	"strconv"
	"time"

	"github.com/runpool/runpool"
)

// Server-side reclaim. A backend whose client vanished behind a NAT that
// forgot the flow keeps its slot until the server notices: with the OS
// defaults, hours. Each connection therefore asks its backend to notice
// within a bounded window:
//
//   - tcp_keepalives_idle/interval/count: the server's kernel probes an
//     idle client and ends the session when the probes go unanswered
//     (through a forgotten NAT flow they vanish). Every supported server
//     knows them, so they travel in the startup packet. While a reply is
//     unacknowledged the kernel retransmits it instead of probing; only
//     idle_session_timeout bounds that case (tcp_user_timeout would, but
//     it also ends a live client that pauses reading a large result).
//   - idle_session_timeout (PostgreSQL 14+), only when configured
//     (ServerIdleSessionTimeout): the server ends a session idle this
//     long. It is off by default because the server cannot tell a
//     borrowed connection from an idle one: a caller waiting on LISTEN,
//     or holding a connection across a slow call, would lose it. The
//     keepalives above and the pool's own ending of orphaned sessions
//     cover the vanished client without it. When set it exceeds
//     MaxConnIdleTime, so the server never ends a session the pool keeps
//     idle. Older servers reject the name at startup, so the first
//     connection sends it with SET once the version is known; Session
//     then puts it in every later startup packet, so that a connection
//     cut between its startup and the SET cannot leave a backend without
//     it.

// serverSettings returns the per-session settings to send at connect
// time, split by how they must travel: startup parameters every server
// accepts, and settings for a SET after connecting to a server of the
// given major version (0 when not yet known: none).
func serverSettings(pool runpool.Config, serverMajor int) (startup, set map[string]string) {
	pool = withDefaults(pool)
	startup = map[string]string{}
	set = map[string]string{}
	if pool.BehindPooler() {
		return startup, set // the pooler owns the server sessions (the root package's pooler.go)
	}
	if d := pool.ServerKeepAliveIdle; d > 0 {
		startup["tcp_keepalives_idle"] = seconds(d)
		startup["tcp_keepalives_interval"] = seconds(max(d/3, time.Second))
		startup["tcp_keepalives_count"] = "3"
	}
	if d := pool.ServerIdleSessionTimeout; d > 0 && serverMajor >= 14 {
		set["idle_session_timeout"] = strconv.FormatInt(d.Milliseconds(), 10)
	}
	return startup, set
}

// seconds is d in whole seconds, rounded up.
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// withDefaults returns pool with the defaults runpool.Config documents
// set in the zero fields this package reads: the pool's own resolution
// happens later, in runpool.Open, and the dialer and the session
// settings are needed before. TestDefaultsAreThePools holds them equal.
func withDefaults(pool runpool.Config) runpool.Config {
	for _, d := range []struct {
		field *time.Duration
		def   time.Duration
	}{
		{&pool.DialTimeout, 5 * time.Second},
		{&pool.TCPKeepAliveIdle, 15 * time.Second},
		{&pool.TCPKeepAliveInterval, 5 * time.Second},
		{&pool.TCPUserTimeout, 20 * time.Second},
		{&pool.ServerKeepAliveIdle, 30 * time.Second},
	} {
		if *d.field == 0 {
			*d.field = d.def
		}
	}
	if pool.TCPKeepAliveCount == 0 {
		pool.TCPKeepAliveCount = 3
	}
	return pool
}
