package runpool

import (
	"strconv"
	"time"
)

// Server-side reclaim (F3). A backend whose client vanished behind a NAT
// that forgot the flow keeps its slot until the server notices: with the
// OS defaults, hours. Each connection therefore asks its backend to
// notice within a bounded window:
//
//   - tcp_keepalives_idle/interval/count: the server's kernel probes an
//     idle client and ends the session when the probes go unanswered
//     (through a forgotten NAT flow they vanish). Every supported server
//     knows them, so they travel in the startup packet.
//   - idle_session_timeout (PostgreSQL 14+), only when configured
//     (ServerIdleSessionTimeout): the server ends a session idle this
//     long. It is off by default because the server cannot tell a
//     borrowed connection from an idle one: a caller waiting on LISTEN,
//     or holding a connection across a slow call, would lose it. The
//     keepalives above and the pool's own ending of orphaned sessions
//     (orphans.go) cover the vanished client without it. When set it
//     exceeds MaxConnIdleTime, so the server never ends a session the
//     pool keeps idle. Older servers reject the name at startup, so the
//     first connection sends it with SET once the version is known; the
//     adapters then put it in every later startup packet, so that a
//     connection cut between its startup and the SET cannot leave a
//     backend without it.

// ServerSettings returns the per-session settings to send at connect
// time, split by how they must travel: startup parameters every server
// accepts, and settings for a SET after connecting to a server of the
// given major version (0 when not yet known: none).
func (c Config) ServerSettings(serverMajor int) (startup, set map[string]string) {
	c = c.withDefaults()
	startup = map[string]string{}
	set = map[string]string{}
	if c.BehindPooler() {
		return startup, set // the pooler owns the server sessions (pooler.go)
	}
	if d := c.ServerKeepAliveIdle; d > 0 {
		startup["tcp_keepalives_idle"] = seconds(d)
		startup["tcp_keepalives_interval"] = seconds(max(d/3, time.Second))
		startup["tcp_keepalives_count"] = "3"
	}
	if d := c.ServerIdleSessionTimeout; d > 0 && serverMajor >= 14 {
		set["idle_session_timeout"] = strconv.FormatInt(d.Milliseconds(), 10)
	}
	return startup, set
}

func seconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
