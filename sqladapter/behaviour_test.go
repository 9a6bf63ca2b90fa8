package sqladapter_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for a DB sqladapter did not open
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/sqladapter"
)

// TestOneIdlePool: idle server connections are runpool's alone.
func TestOneIdlePool(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 4})
	ctx := ctxT(t, 10*time.Second)
	concurrent(t, 4, func() { execOrError(t, ctx, db, "select 1 from pg_sleep(0.05)") })
	// database/sql keeps its shells idle, holding no connection.
	if s := db.Stats(); s.Idle == 0 || s.InUse != 0 {
		t.Errorf("database/sql: idle %d, in use %d; want idle shells, none in use", s.Idle, s.InUse)
	}
	st := sqladapter.Stat(db)
	if st.IdleConns() == 0 || st.AcquiredConns() != 0 {
		t.Errorf("runpool: idle %d, acquired %d; want idle > 0, acquired 0", st.IdleConns(), st.AcquiredConns())
	}
}

func TestTx(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 2})
	ctx := ctxT(t, 10*time.Second)
	if _, err := db.ExecContext(ctx, "create table t (v int)"); err != nil {
		t.Fatal(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "insert into t values (1)"); err != nil {
		t.Fatal(err)
	}
	// Inside the transaction the row is visible; outside it is not yet.
	if n := queryInt(t, ctx, tx, "select count(*) from t"); n != 1 {
		t.Fatalf("inside tx: %d rows", n)
	}
	if n := queryInt(t, ctx, db, "select count(*) from t"); n != 0 {
		t.Fatalf("outside tx before commit: %d rows", n)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	tx, err = db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var iso string
	if err := tx.QueryRowContext(ctx, "show transaction_isolation").Scan(&iso); err != nil {
		t.Fatal(err)
	}
	if iso != "serializable" {
		t.Errorf("isolation %q", iso)
	}
	if _, err := tx.ExecContext(ctx, "insert into t values (2)"); err == nil {
		t.Error("insert in a read-only transaction succeeded")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "insert into t values (3)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, ctx, db, "select count(*) from t"); n != 1 {
		t.Fatalf("after commit and rollback: %d rows, want 1", n)
	}
	// A connection left inside a transaction never goes back to the idle list.
	wantNoneHeld(t, db)
}

func TestStmt(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 2})
	ctx := ctxT(t, 10*time.Second)
	stmt, err := db.PrepareContext(ctx, "select $1::int * 2")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	// Run it from several goroutines: database/sql re-prepares it on each
	// connection it lands on.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				var n int
				if err := stmt.QueryRowContext(ctx, g*100+i).Scan(&n); err != nil {
					t.Error(err)
					return
				}
				if n != 2*(g*100+i) {
					t.Errorf("got %d for %d", n, g*100+i)
					return
				}
			}
		}()
	}
	wg.Wait()

	ins, err := db.PrepareContext(ctx, "select count(*) from generate_series(1, $1::int)")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := ins.QueryRowContext(ctx, 7).Scan(&n); err != nil || n != 7 {
		t.Errorf("count %d, %v", n, err)
	}
	if err := ins.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ins.QueryContext(ctx, 1); err == nil {
		t.Error("query on a closed statement succeeded")
	}

	// A statement prepared inside a transaction.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tx.PrepareContext(ctx, "select $1::text || 'x'")
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := ts.QueryRowContext(ctx, "a").Scan(&s); err != nil || s != "ax" {
		t.Errorf("tx stmt: %q, %v", s, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestConn(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 2})
	ctx := ctxT(t, 10*time.Second)
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Session state lasts as long as the sql.Conn: one backend throughout.
	if _, err := c.ExecContext(ctx, "set application_name = 'pinned'"); err != nil {
		t.Fatal(err)
	}
	pid := queryInt(t, ctx, c, "select pg_backend_pid()")
	var app string
	if err := c.QueryRowContext(ctx, "show application_name").Scan(&app); err != nil || app != "pinned" {
		t.Fatalf("application_name %q, %v", app, err)
	}
	if got := queryInt(t, ctx, c, "select pg_backend_pid()"); got != pid {
		t.Fatalf("backend changed inside a sql.Conn: %d then %d", pid, got)
	}
	if st := sqladapter.Stat(db); st.AcquiredConns() != 1 {
		t.Errorf("acquired %d while a sql.Conn is open, want 1", st.AcquiredConns())
	}

	// Raw reaches pgx as with pgx's stdlib driver, through Conn() *pgx.Conn.
	err = c.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return errors.New("driver conn has no Conn() *pgx.Conn")
		}
		var n int
		return pc.Conn().QueryRow(ctx, "select 41 + 1").Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wantNoneHeld(t, db)
}

func TestPgxTypes(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 2})
	ctx := ctxT(t, 10*time.Second)
	var arr []int64
	m := pgtype.NewMap()
	if err := db.QueryRowContext(ctx, "select $1::int8[]", []int64{1, 2, 3}).Scan(m.SQLScanner(&arr)); err != nil {
		t.Fatal(err)
	}
	if len(arr) != 3 || arr[2] != 3 {
		t.Errorf("array %v", arr)
	}
	var iv pgtype.Interval
	if err := db.QueryRowContext(ctx, "select interval '1 day 2 hours'").Scan(&iv); err != nil {
		t.Fatal(err)
	}
	if iv.Days != 1 || iv.Microseconds != 2*3600*1e6 {
		t.Errorf("interval %+v", iv)
	}
	var ts time.Time
	in := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := db.QueryRowContext(ctx, "select $1::timestamptz", in).Scan(&ts); err != nil || !ts.Equal(in) {
		t.Errorf("timestamptz %v, %v", ts, err)
	}
}

func TestContextCancel(t *testing.T) {
	db, srv, user := openDB(t, runpool.Config{MaxConns: 1})
	ctx := ctxT(t, 20*time.Second)

	// A running query: the deadline ends it, the broken connection is
	// discarded, the next query gets a fresh one.
	qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	start := time.Now()
	_, err := db.ExecContext(qctx, "select pg_sleep(5)")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancelled query returned after %v", d)
	}
	if n := queryInt(t, ctx, db, "select 1"); n != 1 {
		t.Fatal(n)
	}

	// Waiting for a connection: MaxConns 1 is held by a transaction.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	start = time.Now()
	_, err = db.ExecContext(wctx, "select 1")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting query: err %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("waiting query returned after %v", d)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	// A context cancelled while a transaction runs: database/sql rolls back
	// and the connection is not reused mid-transaction.
	tctx, cancel := context.WithCancel(ctx)
	tx, err = db.BeginTx(tctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := tx.Commit(); !errors.Is(err, sql.ErrTxDone) && !errors.Is(err, context.Canceled) {
		t.Errorf("commit after cancel: %v", err)
	}
	if n := queryInt(t, ctx, db, "select 1"); n != 1 {
		t.Fatal(n)
	}
	waitFor(t, 5*time.Second, "pool back to at most one backend", func() bool {
		return srv.Backends(t, user) <= 1 && sqladapter.Stat(db).AcquiredConns() == 0
	})
}

func TestShutdownStat(t *testing.T) {
	db, srv, user := openDB(t, runpool.Config{MaxConns: 2})
	ctx := ctxT(t, 10*time.Second)
	queryInt(t, ctx, db, "select 1")
	if sqladapter.Stat(db).TotalConns() == 0 {
		t.Fatal("no connection after a query")
	}
	// A query still running when the drain starts finishes.
	done := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(ctx, "select pg_sleep(0.3)")
		done <- err
	}()
	waitFor(t, 5*time.Second, "query running", func() bool { return sqladapter.Stat(db).AcquiredConns() == 1 })
	rep, err := sqladapter.Shutdown(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("in-flight query: %v", err)
	}
	if rep.WaitedFor != 1 || rep.Abandoned != 0 {
		t.Errorf("report %+v", rep)
	}
	waitFor(t, 5*time.Second, "no backend left", func() bool { return srv.Backends(t, user) == 0 })
	if _, err := db.ExecContext(ctx, "select 1"); err == nil {
		t.Error("query after Shutdown succeeded")
	}

	foreign, err := sql.Open("pgx", srv.URLFor(user, "pw", user))
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	if _, err := sqladapter.Shutdown(ctx, foreign); !errors.Is(err, sqladapter.ErrNotRunpool) {
		t.Errorf("Shutdown of a foreign DB: %v", err)
	}
	if sqladapter.Stat(foreign) != nil {
		t.Error("Stat of a foreign DB is not nil")
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := ctxT(t, 10*time.Second)
	if _, err := sqladapter.Open(ctx, nil); err == nil {
		t.Error("Open(nil) succeeded")
	}
	sc, err := sqladapter.ParseConfig("postgres://u:secretpw@127.0.0.1:1/db?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	sc.Pool.DialTimeout = time.Second
	_, err = sqladapter.Open(ctx, sc)
	if err == nil {
		t.Fatal("Open on a closed port succeeded")
	}
	if s := err.Error(); strings.Contains(s, "secretpw") {
		t.Errorf("error shows the password: %s", s)
	}
}

func TestAfterConnect(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	ctx := ctxT(t, 10*time.Second)
	sc, err := sqladapter.ParseConfig(srv.URLFor(user, "pw", user))
	if err != nil {
		t.Fatal(err)
	}
	sc.Pool.Logger = discardLogger
	sc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "set application_name = 'hooked'")
		return err
	}
	db, err := sqladapter.Open(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	var app string
	if err := db.QueryRowContext(ctx, "show application_name").Scan(&app); err != nil || app != "hooked" {
		t.Errorf("application_name %q, %v", app, err)
	}
	_ = db.Close()

	// A failing hook fails Open and leaves no backend behind.
	sc.AfterConnect = func(context.Context, *pgx.Conn) error { return errors.New("hook says no") }
	sc.Pool.DialTimeout = time.Second
	octx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := sqladapter.Open(octx, sc); err == nil || !strings.Contains(err.Error(), "hook says no") {
		t.Errorf("Open with a failing hook: %v", err)
	}
	waitFor(t, 5*time.Second, "no backend left", func() bool { return srv.Backends(t, user) == 0 })
}
