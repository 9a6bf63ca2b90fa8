package sqladapter

import (
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/runpool/runpool/internal/pgxconn"
)

// pooled is one server connection as runpool pools it: the shared
// connection (pgxconn.Conn), pgx's stdlib driver connection around it and
// what this package keeps beside it for the connection's life. Only the
// holder of its runpool checkout touches it.
type pooled struct {
	pgxconn.Conn
	sc    *stdlib.Conn
	stmts stmts // statements prepared here, kept across checkouts
	// described: statements are described, never prepared by name (pooler.go)
	described bool
}
