package sqladapter_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/sqladapter"
)

// TestTerminatedConnRetried: backends killed with pg_terminate_backend
// while idle. The checkout sees the server's FATAL waiting on the socket
// and runpool replaces the connection before database/sql gets it, for
// plain statements, transactions and sql.Conn alike; the caller never sees
// an error. runpool's idle probe is turned off (ProbeAfterIdle 1h) so that
// the look at the socket alone has to do it.
func TestTerminatedConnRetried(t *testing.T) {
	db, srv, user := openDB(t, runpool.Config{MaxConns: 4, ProbeAfterIdle: time.Hour})
	ctx := ctxT(t, 20*time.Second)

	warm := func() {
		concurrent(t, 4, func() {
			if _, err := db.ExecContext(ctx, "select pg_sleep(0.05)"); err != nil {
				t.Error(err)
			}
		})
	}
	warm()
	if st := sqladapter.Stat(db); st.IdleConns() < 2 {
		t.Fatalf("only %d idle connections to kill", st.IdleConns())
	}

	// Plain statements.
	killed := srv.TerminateBackends(t, user)
	for i := range 8 {
		if n := queryInt(t, ctx, db, "select $1::int", i); n != int64(i) {
			t.Fatalf("got %d", n)
		}
	}
	st := sqladapter.Stat(db)
	if st.StaleDiscardCount() == 0 {
		t.Errorf("no dead connection was discarded at checkout (killed %d)", killed)
	}
	t.Logf("killed %d, discarded at checkout %d, probes %d, dials %d",
		killed, st.StaleDiscardCount(), st.ProbeCount(), st.NewConnsCount())

	// A transaction and a sql.Conn go through the same retry.
	warm()
	stale := sqladapter.Stat(db).StaleDiscardCount()
	srv.TerminateBackends(t, user)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("BeginTx after the kill: %v", err)
	}
	if n := queryInt(t, ctx, tx, "select 7"); n != 7 {
		t.Fatal(n)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("Conn after the kill: %v", err)
	}
	if n := queryInt(t, ctx, c, "select 8"); n != 8 {
		t.Fatal(n)
	}
	_ = c.Close()
	if got := sqladapter.Stat(db).StaleDiscardCount(); got == stale {
		t.Error("no dead connection was discarded at checkout in the second round")
	}
}

// TestClosedSocketRetried: a connection whose socket is gone (here closed
// under pgx's feet, as a failed keepalive would). Used again at once, the
// checkout may trust it without a look (its idle time, counted from its
// last checkout, may be under the pool's 1 ms peek threshold): the statement then
// fails before sending anything and returns driver.ErrBadConn, database/sql
// retries on a new connection, and the broken one is closed when it comes
// back. After a pause, the checkout sees the closed socket and runpool
// replaces it first. Either way the caller sees no error, for a statement
// pgx has cached and for a new one.
func TestClosedSocketRetried(t *testing.T) {
	either := func(s *runpool.Stat) int64 { return s.BrokenOnReleaseCount() + s.StaleDiscardCount() }
	for _, tc := range []struct {
		pause time.Duration
		count func(*runpool.Stat) int64
	}{
		{0, either},
		{20 * time.Millisecond, (*runpool.Stat).StaleDiscardCount},
	} {
		pause := tc.pause
		t.Run(pause.String(), func(t *testing.T) {
			db, _, _ := openDB(t, runpool.Config{MaxConns: 1, ProbeAfterIdle: time.Hour})
			ctx := ctxT(t, 20*time.Second)
			for _, q := range []string{"select pg_backend_pid()", "select pg_backend_pid() /* new */"} {
				pid := closeSocket(t, ctx, db)
				time.Sleep(pause)
				if got := queryInt(t, ctx, db, q); got == pid {
					t.Fatal("the closed connection was reused")
				}
			}
			if n := tc.count(sqladapter.Stat(db)); n != 2 {
				t.Errorf("%d connections discarded by this path, want 2", n)
			}
		})
	}
}

// closeSocket closes the socket of db's only connection behind pgx's back
// and returns its backend pid.
func closeSocket(t *testing.T, ctx context.Context, db *sql.DB) int64 {
	t.Helper()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pid := queryInt(t, ctx, c, "select pg_backend_pid()")
	err = c.Raw(func(dc any) error {
		return dc.(*sqladapter.DriverConn).Conn().PgConn().Conn().Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
