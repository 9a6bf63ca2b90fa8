// Package pgxconn prepares pgx connection settings for runpool, the same
// way for both adapters: runpool's dialer (keepalives, TCP_USER_TIMEOUT)
// and the server-side reclaim settings (see the root package's reclaim.go).
package pgxconn

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// Setup returns a copy of cc that dials with runpool's dialer and asks
// the server to reclaim abandoned sessions at startup, and the function
// to run on each new connection for the settings that only some server
// versions know. Runtime parameters the user set are never overridden.
func Setup(cc *pgx.ConnConfig, pool runpool.Config) (*pgx.ConnConfig, func(context.Context, *pgx.Conn) error) {
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
	after := func(ctx context.Context, conn *pgx.Conn) error {
		_, set := pool.ServerSettings(ServerMajor(conn))
		var b strings.Builder
		for k, v := range set {
			if !user[k] {
				b.WriteString("SET " + k + " = " + v + ";")
			}
		}
		if b.Len() == 0 {
			return nil
		}
		_, err := conn.PgConn().Exec(ctx, b.String()).ReadAll()
		return err
	}
	return cc, after
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
