package sqladapter_test

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/sqladapter"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// discardLogger keeps the pool's drain lines out of test and benchmark output.
var discardLogger = slog.New(slog.DiscardHandler)

// openDB opens a *sql.DB for a fresh role on the shared server, so the test
// can count and terminate that role's backends alone.
func openDB(t testing.TB, cfg runpool.Config) (*sql.DB, *pgtest.Server, string) {
	t.Helper()
	return openDBConfig(t, cfg, nil)
}

// openDBWith is openDB with edit applied to the Config before the open.
func openDBWith(t testing.TB, cfg runpool.Config, edit func(*sqladapter.Config)) *sql.DB {
	t.Helper()
	db, _, _ := openDBConfig(t, cfg, edit)
	return db
}

func openDBConfig(t testing.TB, cfg runpool.Config, edit func(*sqladapter.Config)) (*sql.DB, *pgtest.Server, string) {
	t.Helper()
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	sc, err := sqladapter.ParseConfig(srv.URLFor(user, "pw", user))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger
	}
	sc.Pool = cfg
	if edit != nil {
		edit(sc)
	}
	db, err := sqladapter.Open(ctxT(t, 10*time.Second), sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, srv, user
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func queryInt(t testing.TB, ctx context.Context, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// concurrent runs f in n goroutines at once and waits for them.
func concurrent(t *testing.T, n int, f func()) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	wg.Wait()
}

// execOrError runs q, reporting a failure without stopping the test, so
// that it may run in a goroutine of its own.
func execOrError(t testing.TB, ctx context.Context, db *sql.DB, q string) {
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Errorf("%s: %v", q, err)
	}
}

// wantNoneHeld fails the test if a runpool connection is still borrowed
// once every database/sql call has ended: idle shells hold none, or a
// parked one (counted idle).
//
// The maintainer takes parked connections back and may hold one for a
// moment (a look, the orphan query), so a hold must outlast 2 s to count.
func wantNoneHeld(t testing.TB, db *sql.DB) {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := sqladapter.Stat(db).AcquiredConns()
		if n == 0 {
			return
		}
		if time.Now().After(end) {
			t.Errorf("%d runpool connections held with no database/sql call under way", n)
			return
		}
	}
}
