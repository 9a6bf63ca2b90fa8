package sqladapter_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/sqladapter"
)

// TestShellsAreReused: database/sql reuses its idle shells, so it opens
// no driver.Conn (and builds no record of one) per checkout, while every
// checkout still goes through runpool.
func TestShellsAreReused(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 2})
	ctx := ctxT(t, 10*time.Second)
	concurrent(t, 2, func() { execOrError(t, ctx, db, "select 1 from pg_sleep(0.05)") })
	shells := db.Stats().OpenConnections
	if shells == 0 {
		t.Fatal("database/sql keeps no idle shell: every checkout opens a driver.Conn")
	}
	acquires := sqladapter.Stat(db).AcquireCount()
	for i := range 20 {
		queryInt(t, ctx, db, "select $1::int", i)
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		queryInt(t, ctx, c, "select 1")
		_ = c.Close()
	}
	if got := db.Stats().OpenConnections; got != shells {
		t.Errorf("database/sql has %d driver connections after 40 checkouts, had %d", got, shells)
	}
	if got := sqladapter.Stat(db).AcquireCount() - acquires; got != 40 {
		t.Errorf("%d runpool checkouts for 40 database/sql checkouts", got)
	}
	wantNoneHeld(t, db)
}

// TestShellCheckoutFailure: when a reused shell cannot get a connection
// from runpool, the database/sql call that reused it returns the error
// (database/sql itself ignores a ResetSession error), and the shell works
// again afterwards.
func TestShellCheckoutFailure(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 1})
	ctx := ctxT(t, 10*time.Second)
	concurrent(t, 3, func() { execOrError(t, ctx, db, "select 1 from pg_sleep(0.02)") })
	if n := db.Stats().Idle; n < 2 {
		t.Fatalf("%d idle shells, want at least 2", n)
	}
	holder, err := db.Conn(ctx) // the pool's only connection
	if err != nil {
		t.Fatal(err)
	}

	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = db.ExecContext(wctx, "select 1")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Exec on a full pool: %v; want DeadlineExceeded", err)
	}
	if n := db.Stats().Idle; n < 1 {
		t.Fatalf("the shell whose checkout failed was not kept (%d idle)", n)
	}

	// A sql.Conn whose checkout failed returns the error on first use and
	// checks out again on the next.
	wctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
	c, err := db.Conn(wctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ExecContext(wctx, "select 1")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("first use of a sql.Conn whose checkout failed: %v", err)
	}
	_ = holder.Close()
	if n := queryInt(t, ctx, c, "select 2"); n != 2 {
		t.Fatal(n)
	}
	_ = c.Close()
	if n := queryInt(t, ctx, db, "select 3"); n != 3 {
		t.Fatal(n)
	}
	wantNoneHeld(t, db)
}

// TestStmtAcrossShellsAndConns: a sql.Stmt prepared once runs on every
// shell and every server connection behind it, including one whose
// statement was never prepared there.
func TestStmtAcrossShellsAndConns(t *testing.T) {
	db, srv, user := openDB(t, runpool.Config{MaxConns: 3})
	ctx := ctxT(t, 10*time.Second)
	stmt, err := db.PrepareContext(ctx, "select $1::int * 3")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	run := func() {
		concurrent(t, 6, func() {
			var n int
			if err := stmt.QueryRowContext(ctx, 5).Scan(&n); err != nil || n != 15 {
				t.Errorf("got %d, %v", n, err)
			}
		})
	}
	run()
	// New server connections behind the same shells.
	srv.TerminateBackends(t, user)
	run()
	wantNoneHeld(t, db)
}

// TestDeadConnsDiscardShells: a shell whose server connection was
// terminated while idle is kept by database/sql (pgx's stdlib driver has it
// discarded), so db.Stats counts shells of dead connections. As pgx's
// TestCheckIdleConn: three connections, two shells kept idle, the backends
// terminated; after a Ping, database/sql holds the one connection it opened.
// The parked case has the shells find their own connections dead; in the
// taken case the maintainer took them back into runpool's idle list first.
func TestDeadConnsDiscardShells(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maintain time.Duration
	}{
		{"parked", time.Hour},
		{"taken", 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, srv, user := openDB(t, runpool.Config{MaxConns: 4, MaintainInterval: tc.maintain})
			db.SetMaxIdleConns(2) // database/sql's default, as in pgx's test
			ctx := ctxT(t, 20*time.Second)
			var conns []*sql.Conn
			for range 3 {
				c, err := db.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				queryInt(t, ctx, c, "select 1")
				conns = append(conns, c)
			}
			for _, c := range conns {
				_ = c.Close()
			}
			if n := srv.TerminateBackends(t, user); n != 3 {
				t.Fatalf("terminated %d backends, want 3", n)
			}
			if tc.maintain < time.Second {
				time.Sleep(10 * tc.maintain) // ticks take the parked connections back
			}
			if err := db.PingContext(ctx); err != nil {
				t.Fatalf("Ping after the backends were terminated: %v", err)
			}
			if n := db.Stats().OpenConnections; n != 1 {
				t.Errorf("database/sql holds %d connections after the Ping, want 1", n)
			}
			wantNoneHeld(t, db)
		})
	}
}
