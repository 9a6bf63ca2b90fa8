package sqladapter

import (
	"context"
	"database/sql/driver"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxIdleStmts is how many prepared statements no sql.Stmt uses any more a
// connection keeps prepared, as pgx's statement cache keeps 512 by default.
//
// Why keep any: database/sql keeps no idle connection here, so it closes
// every driver statement when a checkout ends and prepares it again on the
// next one. pgx's stdlib driver deallocates on close, which would cost two
// extra round trips per sql.Stmt use; kept, the next prepare is a map
// lookup.
const maxIdleStmts = 512

// stmts tracks the statements prepared on one connection. database/sql
// uses a connection from one goroutine at a time, so it needs no lock.
type stmts struct {
	m    map[string]*stmt // by text: every statement prepared here and not evicted
	idle []string         // statements no driver.Stmt had open when listed; oldest first
}

// prepared returns the statement for sql, one more use counted.
func (s *stmts) prepared(c *DriverConn, sql string, sd *pgconn.StatementDescription) *stmt {
	if s.m == nil {
		s.m = make(map[string]*stmt)
	}
	st := s.m[sql]
	if st == nil {
		st = &stmt{c: c}
		s.m[sql] = st
	}
	st.sd = sd // pgx's description, in case pgx prepared it anew
	st.refs++
	return st
}

// closed counts one use of st less. It returns a statement to deallocate
// when the idle list overflows, else "".
func (s *stmts) closed(st *stmt) (evict string) {
	if st.refs--; st.refs > 0 || st.listed {
		return ""
	}
	st.listed = true
	s.idle = append(s.idle, st.sd.SQL)
	for len(s.idle) > maxIdleStmts {
		old := s.m[s.idle[0]]
		s.idle = s.idle[1:]
		old.listed = false
		if old.refs == 0 { // else in use again: listed anew when closed
			delete(s.m, old.sd.SQL)
			return old.sd.SQL
		}
	}
	return ""
}

// PrepareContext prepares query on the connection, or finds it prepared
// already (by this or an earlier checkout), as pgx's stdlib driver names
// statements by their text.
func (c *DriverConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c.pg.IsClosed() {
		return nil, driver.ErrBadConn
	}
	if c.described {
		return c.describe(ctx, query)
	}
	sd, err := c.pg.Prepare(ctx, query, query)
	if err != nil {
		return nil, retryable(err)
	}
	return c.stmts.prepared(c, query, sd), nil
}

// stmt is a prepared statement on one pooled connection, shared by every
// driver.Stmt database/sql opens for its text there. It runs through the
// connection's ExecContext and QueryContext, where pgx finds the prepared
// statement by its text, as pgx's stdlib Stmt does.
type stmt struct {
	c      *DriverConn
	sd     *pgconn.StatementDescription
	refs   int  // driver.Stmts open on it
	listed bool // on the idle list
}

var (
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

// errLegacy answers the pre-context Stmt methods, which database/sql never
// calls on a driver that has the context ones (pgx's stdlib does the same).
var errLegacy = errors.New("sqladapter: Stmt.Exec and Stmt.Query without a context are not implemented")

func (s *stmt) Close() error {
	evict := s.c.stmts.closed(s)
	if evict == "" || s.c.pg.IsClosed() || s.c.described {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return s.c.pg.Deallocate(ctx, evict)
}

func (s *stmt) NumInput() int { return len(s.sd.ParamOIDs) }

func (s *stmt) Exec([]driver.Value) (driver.Result, error) { return nil, errLegacy }

func (s *stmt) Query([]driver.Value) (driver.Rows, error) { return nil, errLegacy }

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.sd.SQL, args)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.sd.SQL, args)
}
