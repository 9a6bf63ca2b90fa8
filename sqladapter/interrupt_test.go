package sqladapter_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/sqladapter"
)

// Guards against: a query its caller's deadline cut short through
// database/sql condemning the pool's idle connections to a probe each on
// a healthy path.
func TestCancelledQueryCostsNoProbes(t *testing.T) {
	v := &adaptertest.Verdicts{}
	db, _, _ := openDB(t, runpool.Config{MaxConns: 3, ProbeAfterIdle: time.Minute, Logger: slog.New(v)})
	ctx := ctxT(t, 30*time.Second)
	var held []interface{ Close() error }
	for range 3 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for _, c := range held {
		_ = c.Close()
	}

	before := sqladapter.Stat(db).ProbeCount()
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := db.ExecContext(qctx, "SELECT pg_sleep(30)")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow query: %v, want the caller's deadline", err)
	}
	// A pool that judges at once logs no verdict.
	for end := time.Now().Add(10 * time.Second); len(v.List()) == 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("verdicts: %q", v.List())
	for range 2 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := sqladapter.Stat(db).ProbeCount() - before; n != 0 {
		t.Errorf("%d idle connections probed after a cancelled query on a healthy path, want none", n)
	}
}
