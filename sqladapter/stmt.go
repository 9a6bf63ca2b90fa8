package sqladapter

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxStmts is how many statements a connection keeps prepared, as pgx's
// statement cache keeps 512 by default; past it the least recently
// prepared is deallocated.
//
// A sql.Stmt's driver statement is prepared by name on the server
// connection its shell holds, as pgx's stdlib driver prepares it, and
// deallocated when the last driver statement of that text on that
// connection closes, as pgx's stdlib does. database/sql closes a driver
// statement while its shell is idle, when the shell has parked its
// connection (conn.go): the shell takes it back for the deallocation and
// parks it again. If runpool took the parked connection back meanwhile,
// the statement stays prepared there until the bound evicts it or the
// connection closes: only the holder of a connection touches it.
//
// A driver statement runs on whichever connection its shell holds when it
// runs: by name where it was prepared, elsewhere through pgx's statement
// cache, which prepares it there once.
const maxStmts = 512

// stmts tracks the statements prepared on one connection. Only the
// holder of the connection's runpool checkout touches it.
type stmts struct {
	m     map[string]*prepared // by text
	order []string             // texts in m, oldest first
}

// prepared is one statement prepared (or described) on a connection.
type prepared struct {
	sd *pgconn.StatementDescription
	// refs counts the open driver statements prepared here under this
	// text; the last one's Close deallocates it.
	refs int
}

// add records sd, prepared (or described) under its text, and returns its
// record. evict is the text of the oldest statement when there are more
// than maxStmts, to deallocate, else "".
func (s *stmts) add(sd *pgconn.StatementDescription) (e *prepared, evict string) {
	if s.m == nil {
		s.m = make(map[string]*prepared)
	}
	if _, ok := s.m[sd.SQL]; !ok {
		s.order = append(s.order, sd.SQL)
	}
	e = &prepared{sd: sd}
	s.m[sd.SQL] = e
	if len(s.order) <= maxStmts {
		return e, ""
	}
	evict = s.order[0]
	s.order = s.order[1:]
	delete(s.m, evict)
	return e, evict
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
// drops its own copy on any error. Without this, a statement prepared here (for
// a sql.Stmt still open, see maxStmts) would fail every query of its
// text on this connection until the connection closed.
func (p *pooled) replan(ctx context.Context, query string, err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" ||
		(pe.Routine != "RevalidateCachedQuery" && !strings.Contains(pe.Message, "cached plan")) {
		return false
	}
	if _, ok := p.stmts.m[query]; ok {
		if !p.described && p.Pgx.Deallocate(ctx, query) != nil {
			return false // kept, to deallocate at its next failure
		}
		p.stmts.remove(query)
	}
	return !p.Pgx.IsClosed() && p.Pgx.PgConn().TxStatus() == 'I'
}

// PrepareContext prepares query by name (its text, as pgx's stdlib driver
// names statements) on the connection the shell holds, or finds it
// prepared there already. The driver.Stmt runs on whichever connection
// the shell holds when it runs (see maxStmts).
func (c *DriverConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	p, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	if p.Pgx.IsClosed() {
		return nil, driver.ErrBadConn
	}
	if e := p.stmts.m[query]; e != nil {
		e.refs++
		return &stmt{c: c, p: p, e: e}, nil
	}
	name := query
	if p.described {
		name = "" // pooler.go
	}
	sd, err := p.Pgx.Prepare(ctx, name, query)
	if err != nil {
		return nil, retryable(err)
	}
	e, evict := p.stmts.add(sd)
	e.refs = 1
	if evict != "" && !p.described {
		// A failure here broke the connection or will show on its next
		// use; this statement is prepared either way.
		_ = p.Pgx.Deallocate(ctx, evict)
	}
	return &stmt{c: c, p: p, e: e}, nil
}

// stmt is a statement prepared through a shell. It runs through the
// shell's ExecContext and QueryContext, as pgx's stdlib Stmt runs through
// its connection's.
type stmt struct {
	c *DriverConn
	p *pooled   // the connection it was prepared on
	e *prepared // its record there
}

var (
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

// errLegacy answers the pre-context Stmt methods, which database/sql never
// calls on a driver that has the context ones (pgx's stdlib does the same).
var errLegacy = errors.New("sqladapter: Stmt.Exec and Stmt.Query without a context are not implemented")

// stmtCloseTimeout bounds a deallocation, as pgx's stdlib bounds it.
const stmtCloseTimeout = 5 * time.Second

// Close deallocates the server-side statement when it is the last driver
// statement of its text on the connection it was prepared on and the
// shell still holds that connection (see maxStmts). database/sql calls it
// while the shell is idle, its connection parked, or within the
// transaction or sql.Conn that prepared it; it ignores the error.
func (s *stmt) Close() error {
	c := s.c
	h := c.held
	if h == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stmtCloseTimeout)
	defer cancel()
	wasParked := c.parked
	c.parked = false
	if !h.Unpark(ctx) {
		c.held = nil
		return nil
	}
	var err error
	if p := h.Value(); p == s.p && p.stmts.m[s.e.sd.SQL] == s.e {
		err = p.release(ctx, s.e)
	}
	if wasParked {
		c.park()
	}
	return err
}

// release drops one reference to e and deallocates its statement after
// the last one.
func (p *pooled) release(ctx context.Context, e *prepared) error {
	e.refs--
	if e.refs > 0 || p.described {
		return nil
	}
	if err := p.Pgx.Deallocate(ctx, e.sd.SQL); err != nil {
		return err // kept, for a later Prepare or the bound
	}
	p.stmts.remove(e.sd.SQL)
	return nil
}

func (s *stmt) NumInput() int { return len(s.e.sd.ParamOIDs) }

func (s *stmt) Exec([]driver.Value) (driver.Result, error) { return nil, errLegacy }

func (s *stmt) Query([]driver.Value) (driver.Rows, error) { return nil, errLegacy }

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.e.sd.SQL, args)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.e.sd.SQL, args)
}
