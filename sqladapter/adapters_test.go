package sqladapter_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// TestAdapters runs the guarantees this package promises to share with
// pgxadapter against every entry of the adapter table (pgx and sql), so
// the two cannot drift: the MaxConns limit holds under load, a killed idle
// connection is replaced before any caller sees it, and Shutdown lets
// in-flight work finish and leaves no backend behind.
func TestAdapters(t *testing.T) {
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			srv := pgtest.Shared(t)
			user := srv.CreateRole(t, -1)
			ctx := ctxT(t, 30*time.Second)
			db, err := a.Open(ctx, srv.URLFor(user, "pw", user), runpool.Config{
				MaxConns: 2, ProbeAfterIdle: 50 * time.Millisecond, Logger: discardLogger,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()

			// The limit: six callers, two connections, none fails.
			var wg sync.WaitGroup
			var peak atomic.Int32
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
						if n := db.Stat().TotalConns(); n > peak.Load() {
							peak.Store(n)
						}
					}
				}
			}()
			for range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := db.Exec(ctx, "select pg_sleep(0.05)"); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			close(stop)
			if p := peak.Load(); p > 2 {
				t.Errorf("pool held %d connections, MaxConns 2", p)
			}
			if b := srv.Backends(t, user); b > 2 {
				t.Errorf("%d backends, MaxConns 2", b)
			}

			// A killed idle connection: the checkout probe replaces it.
			srv.TerminateBackends(t, user)
			time.Sleep(100 * time.Millisecond) // past ProbeAfterIdle
			for i := range 4 {
				n, err := db.QueryInt(ctx, "select $1::int", i)
				if err != nil || n != int64(i) {
					t.Fatalf("after the kill: %d, %v", n, err)
				}
			}
			if db.Stat().ProbeFailureCount() == 0 && db.Stat().BrokenOnReleaseCount() == 0 {
				t.Error("no dead connection was noticed")
			}

			// Drain: the in-flight query finishes, nothing is left.
			done := make(chan error, 1)
			go func() { done <- db.Exec(ctx, "select pg_sleep(0.3)") }()
			waitFor(t, 5*time.Second, "query running", func() bool { return db.Stat().AcquiredConns() == 1 })
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			rep, err := db.Shutdown(sctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Errorf("in-flight query during the drain: %v", err)
			}
			if rep.WaitedFor != 1 || rep.Abandoned != 0 {
				t.Errorf("drain report %+v", rep)
			}
			waitFor(t, 5*time.Second, "no backend left", func() bool { return srv.Backends(t, user) == 0 })
		})
	}
}
