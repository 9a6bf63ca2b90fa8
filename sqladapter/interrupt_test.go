package sqladapter_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
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
	// As adaptertest.ProbesAfterACutQuery does: a cut the server answered
	// after the pool's grace (a loaded machine) is rightly judged "no
	// answer", and made again, up to three times.
	var before int64
	for attempt := 1; ; attempt++ {
		seen := len(v.List())
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

		before = sqladapter.Stat(db).ProbeCount()
		qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := db.ExecContext(qctx, "SELECT pg_sleep(30)")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("slow query: %v, want the caller's deadline", err)
		}
		// A pool that judges at once logs no verdict.
		for end := time.Now().Add(10 * time.Second); len(v.List()) == seen && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		verdicts := v.List()[seen:]
		t.Logf("verdicts: %q", verdicts)
		if attempt < 3 && len(verdicts) > 0 && strings.Contains(verdicts[0], "got no answer") {
			continue
		}
		break
	}
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
