package sqladapter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/sqladapter"
)

// TestCloseWithLeakedRowsAndTx: db.Close with a Rows and a Tx that user
// code never closed must return at once, as database/sql's and pgx's
// stdlib's do, not wait out the drain timeout for connections that never
// come back. It closes the idle connection at once, and the leaked ones
// as the Rows and Tx end.
func TestCloseWithLeakedRowsAndTx(t *testing.T) {
	const drain = 20 * time.Second
	db, srv, user := openDB(t, runpool.Config{MaxConns: 3, DrainTimeout: drain})
	ctx := ctxT(t, 2*drain)
	concurrent(t, 3, func() { execOrError(t, ctx, db, "select pg_sleep(0.05)") })

	rows, err := db.QueryContext(ctx, "select generate_series(1, 3)")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	if n := srv.Backends(t, user); n != 3 {
		t.Fatalf("%d backends before Close, want 3", n)
	}

	closed := make(chan struct{})
	start := time.Now()
	go func() { _ = db.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(drain / 4):
		t.Fatalf("db.Close still waiting after %v with a leaked Rows and Tx (drain timeout %v)", drain/4, drain)
	}
	t.Logf("Close took %v", time.Since(start))
	waitFor(t, 5*time.Second, "the idle connection closed", func() bool { return srv.Backends(t, user) == 2 })

	// The leaked ones still work, and close as they end.
	var n int
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil || n != 3 {
		t.Fatalf("rows after Close: last %d, %v", n, err)
	}
	_ = rows.Close()
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "no backend left", func() bool { return srv.Backends(t, user) == 0 })
}

// TestDrainer: sqladapter.Drainer(db), the form serve.HTTP takes,
// must drain as Shutdown does, waiting for the transaction under way,
// then close db.
func TestDrainer(t *testing.T) {
	db, _, _ := openDB(t, runpool.Config{MaxConns: 2})
	ctx := ctxT(t, 20*time.Second)
	concurrent(t, 2, func() { execOrError(t, ctx, db, "select pg_sleep(0.05)") })
	if n := sqladapter.Stat(db).TotalConns(); n != 2 {
		t.Fatalf("%d connections open, want 2", n)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	type result struct {
		rep runpool.DrainReport
		err error
	}
	done := make(chan result, 1)
	var d runpool.Drainer = sqladapter.Drainer(db)
	go func() {
		rep, err := d.Shutdown(ctx)
		done <- result{rep, err}
	}()
	// The drain closes the idle connection as it begins.
	waitFor(t, 5*time.Second, "the drain began", func() bool { return sqladapter.Stat(db).TotalConns() == 1 })
	if _, err := tx.ExecContext(ctx, "select 2"); err != nil {
		t.Fatalf("the transaction under way, during the drain: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.rep.WaitedFor != 1 || r.rep.Returned != 1 || r.rep.Abandoned != 0 {
		t.Fatalf("drain: %+v, %v; want it to wait for the transaction and see it returned", r.rep, r.err)
	}
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("db still open after the drain")
	}
}

// db.Close with no connection in a caller's hands returns once the pool
// has drained: every session of the pool ended, so a process that exits
// after Close leaves no server slot behind. The maintainer holding a
// connection for a moment (here, to give a quiet instance's budget slot
// back through it, over a slow link) is no caller's. Before, Close
// counted that hold as a connection a caller kept, returned once the idle
// ones were closed, and the process exited with the held one's session
// still on the server.
func TestCloseWaitsForTheDrainWhileThePoolHoldsAConnection(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	proxy, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	sc, err := sqladapter.ParseConfig(strings.Replace(srv.URLFor(user, "pw", user), srv.Addr(), proxy.Addr(), 1))
	if err != nil {
		t.Fatal(err)
	}
	sc.Pool = runpool.Config{Budget: 4, MaxConns: 2, BudgetSlots: runpool.BudgetSlotsAdvisory,
		Name: "close-" + user, Logger: discardLogger}
	ctx := ctxT(t, 20*time.Second)
	db, err := sqladapter.Open(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	// The only connection's first checkout takes a slot; once it is put
	// back quiet, the maintainer's worker takes it and gives the slot
	// back, slowly.
	proxy.SetLatency(100 * time.Millisecond)
	execOrError(t, ctx, db, "select 1")
	waitFor(t, 5*time.Second, "the maintainer never held a connection", func() bool {
		return sqladapter.Stat(db).AcquiredConns() == 1
	})
	proxy.SetLatency(0)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := srv.Backends(t, user); n != 0 {
		t.Fatalf("%d backends of the pool's role when db.Close returned with no connection in a caller's hands, want 0", n)
	}
}
