package sqladapter_test

import (
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/sqladapter"
)

// TestStmtKeptAcrossCheckouts: database/sql returns the shell at the end
// of every checkout here; the server-side statement stays prepared while
// its sql.Stmt is open, so each run costs no prepare, and goes with Close.
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
	if n := count(); n != 0 {
		t.Errorf("%d server-side statements after Stmt.Close, want 0", n)
	}
}

// TestStmtBound: open statements are kept prepared up to a bound, then
// deallocated oldest first; a sql.Stmt whose statement was evicted still
// runs, and closing them all leaves none prepared by name.
func TestStmtBound(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 1})
	ctx := ctxT(t, 30*time.Second)
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var open []*sql.Stmt
	for i := range 600 {
		s, err := c.PrepareContext(ctx, fmt.Sprintf("select %d", i))
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
	}
	// pgx names a statement prepared under its text stmt_<hash>, and its
	// statement cache's stmtcache_<hash>.
	const named = `select count(*) from pg_prepared_statements where name like 'stmt\_%' and statement like 'select %'`
	if n := queryInt(t, ctx, c, named); n != 512 {
		t.Errorf("%d statements kept, want 512", n)
	}
	if old := queryInt(t, ctx, c, `select count(*) from pg_prepared_statements where name like 'stmt\_%' and statement = 'select 0'`); old != 0 {
		t.Error("the oldest statement was not deallocated")
	}
	var v int
	if err := open[0].QueryRowContext(ctx).Scan(&v); err != nil || v != 0 {
		t.Fatalf("evicted statement: %d, %v", v, err)
	}
	for _, s := range open {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := queryInt(t, ctx, c, named); n != 0 {
		t.Errorf("%d statements prepared by name after every sql.Stmt closed, want 0", n)
	}
}

// TestStmtAfterSchemaChange: a statement kept prepared after Stmt.Close
// must not fail every later query of its text with 0A000 "cached plan must
// not change result type" once the table's columns change (a migration
// against a live service): plain queries, a new Prepare and a sql.Stmt
// still open across the change all see the new columns.
func TestStmtAfterSchemaChange(t *testing.T) {
	// One connection: it holds every statement prepared here.
	db, _, _ := openDB(t, runpool.Config{MaxConns: 1})
	ctx := ctxT(t, 20*time.Second)
	if _, err := db.ExecContext(ctx, "create table t (a int); insert into t values (1)"); err != nil {
		t.Fatal(err)
	}
	const q = "select * from t"
	columns := func(what string, want int, query func() (*sql.Rows, error)) {
		t.Helper()
		rows, err := query()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(cols) != want || n != 1 {
			t.Fatalf("%s: columns %v, %d rows; want %d columns, 1 row", what, cols, n, want)
		}
	}

	closed, err := db.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := closed.ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	open, err := db.PrepareContext(ctx, "select * from t where a = $1")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := open.ExecContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "alter table t add column b int"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		columns("db.Query", 2, func() (*sql.Rows, error) { return db.QueryContext(ctx, q) })
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("db.Exec %d: %v", i, err)
		}
		columns("open sql.Stmt", 2, func() (*sql.Rows, error) { return open.QueryContext(ctx, 1) })
	}
	again, err := db.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	columns("new sql.Stmt", 2, func() (*sql.Rows, error) { return again.QueryContext(ctx) })

	// Inside a transaction the failed statement aborts it, so it cannot be
	// retried; the transaction after it sees the new columns.
	if _, err := db.ExecContext(ctx, "alter table t add column c int"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pe *pgconn.PgError
	if _, err := tx.ExecContext(ctx, q); !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("in the transaction: %v, want the 0A000 that aborts it", err)
	}
	_ = tx.Rollback()
	for range 2 {
		columns("db.Query after the transaction", 3, func() (*sql.Rows, error) { return db.QueryContext(ctx, q) })
	}
}

// TestStmtDeallocatedOnClose: a server-side statement must not outlive
// the last sql.Stmt of its text, whatever pgx's exec mode, as with pgx's
// stdlib driver (pgx's TestConnMultiplePrepareAndDeallocate).
func TestStmtDeallocatedOnClose(t *testing.T) {
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			db := openDBWith(t, runpool.Config{MaxConns: 1}, func(c *sqladapter.Config) { c.ConnConfig.DefaultQueryExecMode = mode })
			ctx := ctxT(t, 20*time.Second)
			const q = "select 42"
			count := func() int64 {
				return queryInt(t, ctx, db, "select count(*) from pg_prepared_statements where statement = $1", q)
			}
			s1, err := db.PrepareContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := db.PrepareContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if n := count(); n != 1 {
				t.Fatalf("%d server-side statements for two sql.Stmts of one text, want 1", n)
			}
			if err := s1.Close(); err != nil {
				t.Fatal(err)
			}
			var v int
			if err := s2.QueryRowContext(ctx).Scan(&v); err != nil || v != 42 {
				t.Fatalf("the other sql.Stmt after one closed: %d, %v", v, err)
			}
			if n := count(); n != 1 {
				t.Fatalf("%d server-side statements after the first Close, want 1", n)
			}
			if err := s2.Close(); err != nil {
				t.Fatal(err)
			}
			if n := count(); n != 0 {
				t.Fatalf("%d server-side statements after the last Close, want 0", n)
			}

			// Within a transaction: the sql.Stmt closes as it ends.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.PrepareContext(ctx, q); err != nil {
				t.Fatal(err)
			}
			if n := queryInt(t, ctx, tx, "select count(*) from pg_prepared_statements where statement = $1", q); n != 1 {
				t.Fatalf("%d server-side statements in the transaction, want 1", n)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if n := count(); n != 0 {
				t.Fatalf("%d server-side statements after the transaction, want 0", n)
			}
		})
	}
}
