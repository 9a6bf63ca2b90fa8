package conformance

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// openPools opens n pools of adapter a, as n instances would.
func openPools(t *testing.T, a adaptertest.Adapter, n int, dsn string, cfg runpool.Config) []adaptertest.DB {
	t.Helper()
	dbs := make([]adaptertest.DB, n)
	for i := range dbs {
		dbs[i] = open(t, a, dsn, cfg)
	}
	return dbs
}

// burstAll runs a burst of perPool concurrent queries in every pool at once.
func burstAll(dbs []adaptertest.DB, perPool int, q, d time.Duration) burstResult {
	var mu sync.Mutex
	var all burstResult
	var wg sync.WaitGroup
	for _, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := burst(db, perPool, q, d)
			mu.Lock()
			defer mu.Unlock()
			all.OK += r.OK
			all.Failed += r.Failed
			all.Errors = append(all.Errors, r.Errors...)
			all.P99 = max(all.P99, r.P99)
		}()
	}
	wg.Wait()
	return all
}

// A server whose max_connections fits exactly the budget, and 8 pools
// that together ask for twice as much: 53300 is back-pressure, so every
// query succeeds and no caller sees the server's refusal. The pools know
// no fair share (no MaxInstances), so a pool that got four slots first
// keeps them idle after its burst until MaxConnIdleTime; at its 45 s
// default a pool that got none waited past the 10 s deadline whenever
// four pools were quicker (8 of 64 queries, at load 9 and 15). The test
// sets the idle limit below the deadline: what it asserts is that the
// starved callers wait for the slots to come back instead of failing.
func TestBackpressureNot53300(t *testing.T) {
	const budget = 16
	srv := pgtest.Start(t, pgtest.Options{MaxConnections: budget + 3}) // + superuser_reserved_connections
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			user := srv.CreateRole(t, -1)
			dbs := openPools(t, a, 8, srv.URLFor(user, "pw", user), runpool.Config{MaxConns: 4, MaxConnIdleTime: time.Second})
			r := burstAll(dbs, 8, 50*time.Millisecond, 10*time.Second) // 4x the fair share of 2
			var backoffs int64
			for _, db := range dbs {
				backoffs += db.Stat().BackoffCount()
			}
			t.Logf("8 pools x 8 queries against %d slots: %d/%d ok, p99 %v, %d back-offs on 53300",
				budget, r.OK, r.OK+r.Failed, r.P99.Round(time.Millisecond), backoffs)
			if r.Failed > 0 {
				t.Fatalf("%d queries failed: %s", r.Failed, r.Errors[0])
			}
			if backoffs == 0 {
				t.Fatal("no 53300 happened: the scenario did not overrun the server")
			}
		})
	}
}

// A server that allows 100, a budget of 20 set by configuration only, 8
// pools bursting: the role's backends never exceed 20.
func TestBudgetNeverExceeded(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			user := srv.CreateRole(t, -1)
			dbs := openPools(t, a, 8, srv.URLFor(user, "pw", user), runpool.Config{Budget: 20, MaxInstances: 8})
			var peak atomic.Int64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					if n := int64(srv.Backends(t, user)); n > peak.Load() {
						peak.Store(n)
					}
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}()
			for range 3 {
				if r := burstAll(dbs, 8, 30*time.Millisecond, 10*time.Second); r.Failed > 0 {
					t.Fatalf("%d failed: %s", r.Failed, r.Errors[0])
				}
			}
			close(stop)
			<-sampled
			per := dbs[0].Stat().MaxConns()
			t.Logf("budget 20 over 8 instances: %d per instance, peak %d backends", per, peak.Load())
			if peak.Load() > 20 {
				t.Fatalf("peak %d backends over the budget of 20", peak.Load())
			}
		})
	}
}

// The start-up check and the misconfigurations each give their message.
func TestBudgetMisconfigurations(t *testing.T) {
	srv := pgtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			user := srv.CreateRole(t, 10) // the role may hold 10
			dsn := srv.URLFor(user, "pw", user)

			_, err := a.Open(ctx, dsn, runpool.Config{Budget: 50, MaxInstances: 2, BudgetCheck: "error", Logger: quiet})
			if !errors.Is(err, runpool.ErrBudgetExceedsServer) {
				t.Fatalf("budget over the role's limit: %v", err)
			}
			for _, want := range []string{"RUNPOOL_BUDGET=50", "may hold 10", "role limit 10"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q lacks %q", err, want)
				}
			}
			// warn (the default) opens the pool anyway.
			db, err := a.Open(ctx, dsn, runpool.Config{Budget: 50, MaxInstances: 2, Logger: quiet})
			if err != nil {
				t.Fatalf("BudgetCheck warn: %v", err)
			}
			db.Close()

			_, err = a.Open(ctx, dsn, runpool.Config{Budget: 5, MaxInstances: 10, Logger: quiet})
			if err == nil || !strings.Contains(err.Error(), "RUNPOOL_MAX_INSTANCES=10") {
				t.Fatalf("budget below the instance count: %v", err)
			}

			// An unreachable server fails the start (runpool.Open) or, for
			// an adapter that opens nothing at start as pgxpool does, the
			// first statement; either way with the address, never the
			// password.
			db, err = a.Open(ctx, "postgres://nobody:secret@127.0.0.1:1/x?connect_timeout=2", runpool.Config{Logger: quiet, ServerAwayTimeout: -1})
			if err == nil {
				err = db.Exec(ctx, "SELECT 1")
				db.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "secret") {
				t.Fatalf("unreachable server: %v", err)
			}
		})
	}
}
