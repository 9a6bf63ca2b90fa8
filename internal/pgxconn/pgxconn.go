// Package pgxconn prepares pgx connection settings for runpool, the same
// way for both adapters: runpool's dialer (keepalives, TCP_USER_TIMEOUT)
// and the server-side reclaim settings (see the root package's reclaim.go).
package pgxconn

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
)

// Session holds how runpool opens pgx connections: runpool's dialer and
// the server-side reclaim settings. Settings that only some server
// versions know (idle_session_timeout, PostgreSQL 14+) are sent with SET
// on the first connection; once a connection has told the server's
// version they travel in the startup packet, so that a session never
// exists without them (a connection cut between startup and the SET would
// leave a backend that the server keeps until its TCP keepalives give up).
type Session struct {
	base  *pgx.ConnConfig
	pool  runpool.Config
	user  map[string]bool                // runtime parameters the user set: never overridden
	known atomic.Pointer[pgx.ConnConfig] // base plus the version's settings, once known
}

// Setup returns the Session for cc: a copy of cc that dials with
// runpool's dialer and asks the server to reclaim abandoned sessions at
// startup. The caller may still change the copy (ConnConfig) before the
// first connection, e.g. its DialFunc.
func Setup(cc *pgx.ConnConfig, pool runpool.Config) *Session {
	cc = cc.Copy()
	forPooler(cc, pool)
	cc.DialFunc = pool.NetDialer().DialContext
	user := make(map[string]bool, len(cc.RuntimeParams))
	for k := range cc.RuntimeParams {
		user[k] = true
	}
	startup, _ := pool.ServerSettings(0)
	for k, v := range startup {
		if !user[k] {
			cc.RuntimeParams[k] = v
		}
	}
	return &Session{base: cc, pool: pool, user: user}
}

// ConnConfig is the configuration to dial with now (not a copy: copy it
// before connecting).
func (s *Session) ConnConfig() *pgx.ConnConfig {
	if k := s.known.Load(); k != nil {
		return k
	}
	return s.base
}

// AfterConnect runs on each new connection: it sends with SET the
// settings for the server's version that the startup packet did not
// carry, and from then on has them carried there.
func (s *Session) AfterConnect(ctx context.Context, conn *pgx.Conn) error {
	_, set := s.pool.ServerSettings(ServerMajor(conn))
	sent := conn.Config().RuntimeParams
	var b strings.Builder
	for k, v := range set {
		if !s.user[k] && sent[k] != v {
			b.WriteString("SET " + k + " = " + v + ";")
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if s.known.Load() == nil {
		k := s.base.Copy()
		for name, v := range set {
			if !s.user[name] {
				k.RuntimeParams[name] = v
			}
		}
		s.known.CompareAndSwap(nil, k)
	}
	_, err := conn.PgConn().Exec(ctx, b.String()).ReadAll()
	return err
}

// DialFailed forgets the version's startup settings when the server
// refused one of them (undefined_object: a failover to an older major
// version), so the next dial sends only what every server accepts.
func (s *Session) DialFailed(err error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42704" {
		s.known.Store(nil)
	}
}

// ServerMajor is the server's major version from the server_version it
// reported at startup ("15.18 (Debian ...)" -> 15), 0 when unknown.
func ServerMajor(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	end := strings.IndexAny(v, ". ")
	if end < 0 {
		end = len(v)
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

// ReadLimits reads what the server allows the connection's role, for the
// budget (runpool.LimitReader).
func ReadLimits(ctx context.Context, conn *pgx.Conn) (runpool.ServerLimits, error) {
	var l runpool.ServerLimits
	err := conn.QueryRow(ctx, `SELECT current_setting('max_connections')::int,
		current_setting('superuser_reserved_connections')::int,
		coalesce(current_setting('reserved_connections', true)::int, 0),
		r.rolconnlimit, d.datconnlimit, r.rolsuper
	FROM pg_roles r, pg_database d
	WHERE r.rolname = current_user AND d.datname = current_database()`).Scan(
		&l.MaxConnections, &l.SuperuserReserved, &l.Reserved, &l.RoleLimit, &l.DatabaseLimit, &l.Superuser)
	return l, err
}

// EndOrphans ends, through conn, the sessions among orphans that are
// still there (runpool.OrphanEnder): same PID, same session user, idle,
// begun within the orphan's window. A PID the server reused for another
// session fails the window or the user, and a session at work fails
// "idle".
func EndOrphans(ctx context.Context, conn *pgx.Conn, orphans []runpool.Orphan) (int, error) {
	pids := make([]int64, len(orphans))
	from := make([]time.Time, len(orphans))
	to := make([]time.Time, len(orphans))
	for i, o := range orphans {
		pids[i], from[i], to[i] = int64(o.PID), o.From, o.To
	}
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid))::int
	FROM pg_stat_activity a
	JOIN unnest($1::int8[], $2::timestamptz[], $3::timestamptz[]) AS o(pid, began_from, began_to) ON a.pid = o.pid
	WHERE a.usename = session_user AND a.state = 'idle' AND a.pid <> pg_backend_pid()
	AND a.backend_start BETWEEN o.began_from AND o.began_to`, pids, from, to).Scan(&n)
	return n, err
}
