package sqladapter

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxStmts is how many statements a connection keeps prepared, as pgx's
// statement cache keeps 512 by default.
//
// Why keep any past the sql.Stmt that prepared them: database/sql
// prepares a sql.Stmt once per driver.Conn it runs on, and its driver
// connections are shells (conn.go) that hold a different server
// connection from one checkout to the next. A statement prepared by an
// earlier checkout, or by another shell, is found here by its text at no
// round trip. Deallocating on close, as pgx's stdlib driver does, would
// cost two round trips per use.
const maxStmts = 512

// stmts tracks the statements prepared on one connection. Only the
// holder of the connection's runpool checkout touches it.
type stmts struct {
	m     map[string]*pgconn.StatementDescription // by text
	order []string                                // texts in m, oldest first
}

// add records sd, prepared (or described) under its text. It returns the
// text of the oldest statement when there are more than maxStmts, to
// deallocate, else "".
func (s *stmts) add(sd *pgconn.StatementDescription) (evict string) {
	if s.m == nil {
		s.m = make(map[string]*pgconn.StatementDescription)
	}
	if _, ok := s.m[sd.SQL]; !ok {
		s.order = append(s.order, sd.SQL)
	}
	s.m[sd.SQL] = sd
	if len(s.order) <= maxStmts {
		return ""
	}
	evict = s.order[0]
	s.order = s.order[1:]
	delete(s.m, evict)
	return evict
}

// remove forgets the statement prepared under text.
func (s *stmts) remove(text string) {
	if _, ok := s.m[text]; !ok {
		return
	}
	delete(s.m, text)
	for i, t := range s.order {
		if t == text {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// replan handles err from running query on p. When the server refused a
// statement prepared before its result columns changed (0A000 "cached
// plan must not change result type", after an ALTER TABLE that a
// migration ran while the service was up), it deallocates the statement
// kept here under query's text, so the next run prepares it anew, and
// reports whether that run may follow at once: outside a transaction,
// where the refusal ran nothing. Inside one the refusal aborted it; the
// statement is prepared anew after the rollback. pgx's statement cache
// drops its own copy on any error. Without this, a statement kept past
// its sql.Stmt's Close (see maxStmts) would fail every query of its text
// on this connection until the connection closed.
func (p *pooled) replan(ctx context.Context, query string, err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" ||
		(pe.Routine != "RevalidateCachedQuery" && !strings.Contains(pe.Message, "cached plan")) {
		return false
	}
	if _, ok := p.stmts.m[query]; ok {
		if !p.described && p.pg.Deallocate(ctx, query) != nil {
			return false // kept, to deallocate at its next failure
		}
		p.stmts.remove(query)
	}
	return !p.pg.IsClosed() && p.pg.PgConn().TxStatus() == 'I'
}

// PrepareContext prepares query on the connection the shell holds, or
// finds it prepared there already, as pgx's stdlib driver names
// statements by their text. The driver.Stmt runs on whichever connection
// the shell holds when it runs, where pgx finds the statement prepared
// by its text or prepares it in its statement cache.
func (c *DriverConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	p, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	if p.pg.IsClosed() {
		return nil, driver.ErrBadConn
	}
	if sd := p.stmts.m[query]; sd != nil {
		return &stmt{c: c, sd: sd}, nil
	}
	name := query
	if p.described {
		name = "" // pooler.go
	}
	sd, err := p.pg.Prepare(ctx, name, query)
	if err != nil {
		return nil, retryable(err)
	}
	if evict := p.stmts.add(sd); evict != "" && !p.described {
		// A failure here broke the connection or will show on its next
		// use; this statement is prepared either way.
		_ = p.pg.Deallocate(ctx, evict)
	}
	return &stmt{c: c, sd: sd}, nil
}

// stmt is a statement prepared through a shell. It runs through the
// shell's ExecContext and QueryContext, as pgx's stdlib Stmt runs through
// its connection's.
type stmt struct {
	c  *DriverConn
	sd *pgconn.StatementDescription
}

var (
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

// errLegacy answers the pre-context Stmt methods, which database/sql never
// calls on a driver that has the context ones (pgx's stdlib does the same).
var errLegacy = errors.New("sqladapter: Stmt.Exec and Stmt.Query without a context are not implemented")

// Close keeps the server-side statement for the next use (see maxStmts).
// database/sql may call it while the shell holds no connection, or a
// parked one.
func (s *stmt) Close() error { return nil }

func (s *stmt) NumInput() int { return len(s.sd.ParamOIDs) }

func (s *stmt) Exec([]driver.Value) (driver.Result, error) { return nil, errLegacy }

func (s *stmt) Query([]driver.Value) (driver.Rows, error) { return nil, errLegacy }

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.sd.SQL, args)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.sd.SQL, args)
}
