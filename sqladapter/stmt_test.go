package sqladapter_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/runpool/runpool"
)

// TestStmtKeptAcrossCheckouts: database/sql closes a connection's driver
// statements at the end of every checkout here; the server-side statement
// stays prepared, so the next checkout's prepare costs no round trip.
func TestStmtKeptAcrossCheckouts(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 1})
	ctx := ctxT(t, 10*time.Second)
	const q = "select $1::int + 42"
	stmt, err := db.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var n int
		if err := stmt.QueryRowContext(ctx, i).Scan(&n); err != nil || n != 42+i {
			t.Fatalf("got %d, %v", n, err)
		}
	}
	count := func() int64 {
		return queryInt(t, ctx, db, "select count(*) from pg_prepared_statements where statement = $1", q)
	}
	if n := count(); n != 1 {
		t.Errorf("%d server-side statements for %q between checkouts, want 1", n, q)
	}
	if err := stmt.Close(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("%d server-side statements after Stmt.Close, want 1 (kept for reuse)", n)
	}
}

// TestStmtBound: statements no sql.Stmt uses are kept up to a bound, then
// deallocated oldest first.
func TestStmtBound(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 1})
	ctx := ctxT(t, 30*time.Second)
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 600 {
		s, err := c.PrepareContext(ctx, fmt.Sprintf("select %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	n := queryInt(t, ctx, c, "select count(*) from pg_prepared_statements where statement like 'select %' and statement not like '%pg_prepared%'")
	if n != 512 {
		t.Errorf("%d statements kept, want 512", n)
	}
	if old := queryInt(t, ctx, c, "select count(*) from pg_prepared_statements where statement = 'select 0'"); old != 0 {
		t.Error("the oldest statement was not deallocated")
	}
	// An evicted statement prepares again.
	s, err := c.PrepareContext(ctx, "select 0")
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := s.QueryRowContext(ctx).Scan(&v); err != nil || v != 0 {
		t.Fatalf("re-prepared statement: %d, %v", v, err)
	}
	_ = s.Close()
}
