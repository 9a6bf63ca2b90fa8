package conformance

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

// One busy pool, seven idle, the budget being the role's CONNECTION
// LIMIT: the server enforces it, so the busy pool borrows the idle ones'
// share, and its throughput is at least 4x what its static fair share
// allows, while the role never holds more than the limit.
func TestBorrowIdleShare(t *testing.T) {
	srv := pgtest.Shared(t)
	const limit, instances = 16, 8
	const q = 50 * time.Millisecond
	const run = 2 * time.Second
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			user := srv.CreateRole(t, limit)
			dbs := openPools(t, a, instances, srv.URLFor(user, "pw", user), runpool.Config{MaxInstances: instances})
			busy := dbs[0]

			var done atomic.Int64
			var failed atomic.Int64
			var peak atomic.Int64
			ctx, cancel := context.WithTimeout(context.Background(), run)
			defer cancel()
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						qctx, qcancel := context.WithTimeout(context.Background(), 3*time.Second)
						err := busy.Exec(qctx, "SELECT pg_sleep($1)", q.Seconds())
						qcancel()
						if err != nil {
							if ctx.Err() == nil {
								failed.Add(1)
							}
							continue
						}
						done.Add(1)
					}
				}()
			}
			for ctx.Err() == nil {
				if n := int64(srv.Backends(t, user)); n > peak.Load() {
					peak.Store(n)
				}
				time.Sleep(20 * time.Millisecond)
			}
			wg.Wait()

			fair := 16 / 9 // the static share: floor(limit / ceil(8 x 1.1))
			static := float64(fair) * run.Seconds() / q.Seconds()
			got := float64(done.Load())
			t.Logf("busy pool: %d queries of %v in %v (static fair share of %d connection allows at most %.0f: %.1fx); max_conns %d; peak %d backends of %d; %d failed",
				done.Load(), q, run, fair, static, got/static, busy.Stat().MaxConns(), peak.Load(), limit, failed.Load())
			if failed.Load() > 0 {
				t.Fatalf("%d queries failed", failed.Load())
			}
			if got < 4*static {
				t.Fatalf("throughput %.1fx the static fair share, want at least 4x", got/static)
			}
			if peak.Load() > limit {
				t.Fatalf("peak %d backends over the role's limit %d", peak.Load(), limit)
			}
		})
	}
}

// Three pools, all busy, the budget being the role's CONNECTION LIMIT
// (12 for 3 instances: a fair share of 3 each, up to 6 with borrowing).
// The first two fill the server between them; the third, busy a second
// later with the one connection it opened with, holds its fair share over
// the next two seconds (2.9-3.0 connections on average): a pool whose
// dial met 53300 stops borrowing and closes its borrowed connections as
// they come back (contended). Before, the borrowers dialed again the
// moment a slot freed, while the third pool backed off between its dials
// (1.7-2.6 on average).
func TestBorrowersMakeRoomWhenServerFull(t *testing.T) {
	srv := pgtest.Shared(t)
	const limit, instances, share = 12, 3, 3
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			user := srv.CreateRole(t, limit)
			dbs := openPools(t, a, instances, srv.URLFor(user, "pw", user), runpool.Config{MaxInstances: instances})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var failed atomic.Int64
			var wg sync.WaitGroup
			load := func(db adaptertest.DB) {
				for range 16 {
					wg.Go(func() {
						for ctx.Err() == nil {
							qctx, qcancel := context.WithTimeout(context.Background(), 5*time.Second)
							if err := db.Exec(qctx, "SELECT pg_sleep(0.05)"); err != nil {
								failed.Add(1)
							}
							qcancel()
						}
					})
				}
			}
			load(dbs[0])
			load(dbs[1])
			time.Sleep(time.Second)
			late := dbs[2]
			load(late)
			// Open connections, not the dials under way that TotalConns
			// counts too (a dial that meets 53300 opens none).
			open := func(db adaptertest.DB) int32 {
				st := db.Stat()
				return st.TotalConns() - st.ConstructingConns()
			}
			var sum, n int64
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); n++ {
				sum += int64(open(late))
				time.Sleep(10 * time.Millisecond)
			}
			mean := float64(sum) / float64(n)
			held := [2]int32{open(dbs[0]), open(dbs[1])}
			cancel()
			wg.Wait()
			t.Logf("late pool: %.1f connections open on average over 2 s (fair share %d); the first two hold %v at the end; %d queries failed", mean, share, held, failed.Load())
			if failed.Load() > 0 {
				t.Fatalf("%d queries failed", failed.Load())
			}
			if mean < share-0.5 {
				t.Fatalf("the late pool held %.1f connections on average over 2 s, below its fair share of %d, while the first two held %v", mean, share, held)
			}
		})
	}
}
