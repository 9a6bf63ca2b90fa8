package sqladapter

import (
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/runpool/runpool/internal/sockpeek"
)

// pooled is one server connection as runpool pools it: pgx's stdlib
// driver connection and what this package keeps beside it for the
// connection's life. Only the holder of its runpool checkout touches it.
type pooled struct {
	sc    *stdlib.Conn
	pg    *pgx.Conn
	sock  sockpeek.Socket // the look at the socket on checkout (source.Gone)
	stmts stmts           // statements prepared here, kept across checkouts
	// described: statements are described, never prepared by name (pooler.go)
	described bool
}

// reusable reports whether pg may go back to the idle list: open, not
// busy and outside any transaction.
func reusable(pg *pgx.Conn) bool {
	pc := pg.PgConn()
	return !pc.IsClosed() && !pc.IsBusy() && pc.TxStatus() == 'I'
}
