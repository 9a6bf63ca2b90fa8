package pgxconn

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"reflect"
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
	slots slots                          // the budget slots, when on (slots.go)
}

// Setup returns the Session for cc: a copy of cc that dials with
// runpool's dialer and asks the server to reclaim abandoned sessions at
// startup. The caller may still change the copy (ConnConfig) before the
// first connection, e.g. its DialFunc.
func Setup(cc *pgx.ConnConfig, pool runpool.Config) *Session {
	cc = cc.Copy()
	forPooler(cc, pool)
	if isNetDialer(cc.DialFunc) {
		cc.DialFunc = Dialer(pool).DialContext
	}
	user := make(map[string]bool, len(cc.RuntimeParams))
	for k := range cc.RuntimeParams {
		user[k] = true
	}
	startup, _ := serverSettings(pool, 0)
	for k, v := range startup {
		if !user[k] {
			cc.RuntimeParams[k] = v
		}
	}
	return &Session{base: cc, pool: pool, user: user, slots: slotsFor(cc, pool)}
}

// netDialerCode is the code of every (*net.Dialer).DialContext method
// value, pgconn's default DialFunc among them.
var netDialerCode = reflect.ValueOf((&net.Dialer{}).DialContext).Pointer()

// isNetDialer reports whether f is unset or a net.Dialer's DialContext,
// as pgconn.ParseConfig sets it: runpool's dialer (keepalives, user
// timeout) replaces it. A DialFunc of the user's own (a tunnel, a proxy,
// a test's fault injector) is kept as it is.
func isNetDialer(f pgconn.DialFunc) bool {
	return f == nil || reflect.ValueOf(f).Pointer() == netDialerCode
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
// carry (and from then on has them carried there), and, unless a pooler
// hides the server sessions, reads what identifies the session exactly
// (sessionOf) and, with budget slots on, takes a slot (slots.go), in the
// same round trip: the connection holds none when every slot is held
// (slotOf reports false).
func (s *Session) AfterConnect(ctx context.Context, conn *pgx.Conn) error {
	_, err := s.afterConnect(ctx, conn, s.slots, false, false)
	return err
}

// afterConnect is AfterConnect, trying for a slot of slots (none when
// slots.n is 0), with the want mark when want and a look whether
// another instance waits when look (mark.go); it returns what the try
// found.
func (s *Session) afterConnect(ctx context.Context, conn *pgx.Conn, slots slots, want, look bool) (tried, error) {
	_, set := serverSettings(s.pool, serverMajor(conn))
	sent := conn.Config().RuntimeParams
	batch := &pgconn.Batch{}
	sets := 0
	for k, v := range set {
		if !s.user[k] && sent[k] != v {
			batch.ExecParams("SET "+k+" = "+v, nil, nil, nil, nil)
			sets++
		}
	}
	if sets > 0 && s.known.Load() == nil {
		k := s.base.Copy()
		for name, v := range set {
			if !s.user[name] {
				k.RuntimeParams[name] = v
			}
		}
		s.known.CompareAndSwap(nil, k)
	}
	identify := !s.pool.BehindPooler()
	if identify {
		batch.ExecParams(sessionQuery, nil, nil, nil, []int16{1, 1, 1})
	}
	if slots.n > 0 {
		batch.ExecParams(slots.tryQuery(want, false, look), nil, nil, nil, nil)
	}
	if sets == 0 && !identify && slots.n == 0 {
		return tried{}, nil
	}
	results, err := conn.PgConn().ExecBatch(ctx, batch).ReadAll()
	if err != nil {
		return tried{}, err
	}
	var try tried
	if slots.n > 0 {
		try = readTry(results[len(results)-1])
		if try.ok {
			conn.PgConn().CustomData()[slotKey] = slot{s: slots, k: try.k, n: 1}
		}
		noteMark(conn.PgConn().CustomData(), try.marked)
		results = results[:len(results)-1]
	}
	if !identify {
		return try, nil
	}
	if rows := results[len(results)-1].Rows; len(rows) == 1 {
		if o, ok := decodeSession(rows[0]); ok {
			conn.PgConn().CustomData()[sessionKey] = o
		}
	}
	return try, nil
}

// sessionQuery reads what identifies the session: its PID and start as
// the server recorded them, and the server's own start, which tells
// servers behind one address apart. Any role may read all three for its
// own session (system_identifier, which pg_control_system() shows only to
// privileged roles, is the same on a primary and its replicas anyway).
const sessionQuery = `SELECT pg_catalog.pg_backend_pid(), a.backend_start, pg_catalog.pg_postmaster_start_time()
	FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a`

// sessionKey holds the session's runpool.Orphan in pgconn's CustomData.
const sessionKey = "runpool.session"

// pgEpoch is where PostgreSQL's binary timestamps count from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// decodeSession reads sessionQuery's binary row.
func decodeSession(row [][]byte) (runpool.Orphan, bool) {
	if len(row) != 3 || len(row[0]) != 4 || len(row[1]) != 8 || len(row[2]) != 8 {
		return runpool.Orphan{}, false // a NULL: unknown
	}
	ts := func(b []byte) time.Time {
		return pgEpoch.Add(time.Duration(int64(binary.BigEndian.Uint64(b))) * time.Microsecond)
	}
	return runpool.Orphan{PID: binary.BigEndian.Uint32(row[0]), Began: ts(row[1]), Server: ts(row[2])}, true
}

// sessionOf returns conn's session as AfterConnect read it; false when
// unknown (behind a pooler, or not read).
func sessionOf(conn *pgx.Conn) (runpool.Orphan, bool) {
	o, ok := conn.PgConn().CustomData()[sessionKey].(runpool.Orphan)
	return o, ok
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

// serverMajor is the server's major version from the server_version it
// reported at startup ("15.18 (Debian ...)" -> 15), 0 when unknown.
func serverMajor(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	end := strings.IndexAny(v, ". ")
	if end < 0 {
		end = len(v)
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

// readLimits reads what the server allows the connection's role, for the
// budget (runpool.LimitReader).
func readLimits(ctx context.Context, conn *pgx.Conn) (runpool.ServerLimits, error) {
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

// endOrphans ends, through conn, the sessions among orphans that are on
// conn's server and still there (runpool.OrphanEnder): the same server
// start, PID and session start, idle, of the same session user. The
// server's identity is checked in the same statement, so a connection
// that landed on another server behind the same address ends nothing
// there; a session at work fails "idle".
func endOrphans(ctx context.Context, conn *pgx.Conn, orphans []runpool.Orphan) (int, error) {
	pids := make([]int64, len(orphans))
	began := make([]time.Time, len(orphans))
	server := make([]time.Time, len(orphans))
	for i, o := range orphans {
		pids[i], began[i], server[i] = int64(o.PID), o.Began, o.Server
	}
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid))::int
	FROM pg_stat_activity a
	JOIN unnest($1::int8[], $2::timestamptz[], $3::timestamptz[]) AS o(pid, began, server) ON a.pid = o.pid
	WHERE o.server = pg_postmaster_start_time() AND a.backend_start = o.began
	AND a.usename = session_user AND a.state = 'idle' AND a.pid <> pg_backend_pid()`, pids, began, server).Scan(&n)
	return n, err
}
