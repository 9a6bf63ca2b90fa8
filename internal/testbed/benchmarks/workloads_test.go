package benchmarks

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// TestWorkloads runs each benchmark's operation once on each pool, so that
// a plain go test (as CI runs it, without -bench) checks that every
// benchmark works, in well under a second of database time.
func TestWorkloads(t *testing.T) {
	url := tpcbDatabase(t)
	pools := openPools(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range pools {
		t.Run("pool="+p.name, func(t *testing.T) {
			if err := p.acquireRelease(ctx); err != nil {
				t.Errorf("acquire+release: %v", err)
			}
			var one int
			if err := p.select1(ctx, &one); err != nil || one != 1 {
				t.Errorf("SELECT 1: got %d, %v", one, err)
			}
			if err := p.tpcb(ctx, drawTPCB()); err != nil {
				t.Errorf("TPC-B transaction: %v", err)
			}
		})
	}

	// Each pool's transaction committed: one history row each.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pgbench_history").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(pools) {
		t.Errorf("pgbench_history holds %d rows after one transaction per pool, want %d", rows, len(pools))
	}
}

// TestAcquireReleaseAllocs: runpool's checkout and return of an idle
// connection allocates nothing, as pgxpool's (the handle slab's one
// allocation per 64 checkouts of a connection rounds to zero here, as it
// does in the benchmark's allocs/op).
func TestAcquireReleaseAllocs(t *testing.T) {
	pools := openPools(t, pgtest.Shared(t).URL())
	ctx := context.Background()
	for _, p := range pools {
		if p.name != "runpool" && p.name != "pgxpool" {
			continue
		}
		var err error
		if n := testing.AllocsPerRun(1000, func() { err = p.acquireRelease(ctx) }); n != 0 || err != nil {
			t.Errorf("pool=%s: acquire+release: %v allocations per run (err %v), want 0", p.name, n, err)
		}
	}
}
