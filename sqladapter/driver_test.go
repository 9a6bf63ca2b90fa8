package sqladapter_test

import (
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/sqladapter"
)

// TestSQLOpen: tools that take only a driver name and a DSN open a
// runpool pool with sql.Open("runpool", dsn); every sql.Open of one DSN
// shares one pool (the budget is counted once), which opens on the first
// connection and closes with the last *sql.DB.
func TestSQLOpen(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	ctx := ctxT(t, 20*time.Second)
	t.Setenv("RUNPOOL_MAX_CONNS", "3")
	dsn := srv.URLFor(user, "pw", user)

	db1, err := sql.Open(sqladapter.DriverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db1.Close()
	if sqladapter.Stat(db1) != nil || srv.Backends(t, user) != 0 {
		t.Fatal("sql.Open opened a connection")
	}
	if err := db1.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	db2, err := sql.Open(sqladapter.DriverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	concurrent(t, 4, func() { execOrError(t, ctx, db1, "select pg_sleep(0.05)") })
	concurrent(t, 4, func() { execOrError(t, ctx, db2, "select pg_sleep(0.05)") })
	st1, st2 := sqladapter.Stat(db1), sqladapter.Stat(db2)
	if st1 == nil || st2 == nil || st1.MaxConns() != 3 || st1.TotalConns() != st2.TotalConns() {
		t.Fatalf("Stat: %v, %v: want one pool of 3 for both", st1, st2)
	}
	if n := srv.Backends(t, user); n > 3 {
		t.Errorf("%d backends for two *sql.DBs of one DSN, want at most the pool's 3", n)
	}

	// The first Close leaves the shared pool to the second DB.
	if err := db1.Close(); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, ctx, db2, "select 5"); n != 5 {
		t.Fatal(n)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "no backend left after the last Close", func() bool { return srv.Backends(t, user) == 0 })

	// A later sql.Open of the DSN opens a new pool.
	db3, err := sql.Open(sqladapter.DriverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, ctx, db3, "select 6"); n != 6 {
		t.Fatal(n)
	}
	if _, err := sqladapter.Shutdown(ctx, db3); err != nil {
		t.Fatal(err)
	}
	if srv.Backends(t, user) != 0 {
		t.Error("backends left after Shutdown")
	}
}

// TestSQLOpenErrors: a bad DSN fails sql.Open naming the setting; a
// server that cannot be reached fails the first call, and the next call
// tries again.
func TestSQLOpenErrors(t *testing.T) {
	t.Setenv("RUNPOOL_MAX_CONNS", "lots")
	if _, err := sql.Open(sqladapter.DriverName, "postgres://u@127.0.0.1:1/db"); err == nil || !strings.Contains(err.Error(), "RUNPOOL_MAX_CONNS") {
		t.Errorf("sql.Open with RUNPOOL_MAX_CONNS=lots: %v", err)
	}
	t.Setenv("RUNPOOL_MAX_CONNS", "")
	db, err := sql.Open(sqladapter.DriverName, "postgres://u:secret@127.0.0.1:1/db?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := ctxT(t, 10*time.Second)
	for range 2 {
		err := db.PingContext(ctx)
		if err == nil || strings.Contains(err.Error(), "secret") || errors.Is(err, runpool.ErrClosed) {
			t.Errorf("Ping of a closed port: %v", err)
		}
	}
}
