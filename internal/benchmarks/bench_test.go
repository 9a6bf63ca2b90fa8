package benchmarks

import (
	"context"
	"flag"
	"strconv"
	"testing"

	"github.com/runpool/runpool/internal/pgtest"
)

// rounds is how many times each benchmark runs all four pools in turn.
// go test's -count repeats each sub-benchmark back to back (pool=pgxpool
// ten times, then pool=runpool ten times), so a load that another process
// puts on the machine for a minute would fall on one pool alone; rounds
// interleave them instead. benchstat's -ignore /round pools the rounds
// into one sample per pool.
var rounds = flag.Int("rounds", 1, "run each benchmark's pools in turn this many times (sub-benchmark round=N)")

// The benchmarks below open the four pools once and run them in turn,
// round after round. Parallel ones use RunParallel's default of GOMAXPROCS
// goroutines; every pool has more connections than that (poolSize), so
// nobody waits for one.

// BenchmarkAcquireRelease is the pools' own cost: borrowing an idle
// connection and giving it back, with no round trip. pgx pools: Acquire
// and Release; database/sql: DB.Conn and Conn.Close.
func BenchmarkAcquireRelease(b *testing.B) {
	pools := openPools(b, pgtest.Shared(b).URL())
	eachRound(b, func(b *testing.B) {
		for _, p := range pools {
			b.Run("mode=serial/pool="+p.name, func(b *testing.B) { benchSerial(b, p.acquireRelease) })
			b.Run("mode=parallel/pool="+p.name, func(b *testing.B) { benchParallel(b, func() op { return p.acquireRelease }) })
		}
	})
}

// BenchmarkSelect1 runs SELECT 1 from parallel goroutines: one round trip
// to the server plus the pool's checkout and return.
func BenchmarkSelect1(b *testing.B) {
	pools := openPools(b, pgtest.Shared(b).URL())
	eachRound(b, func(b *testing.B) {
		for _, p := range pools {
			b.Run("pool="+p.name, func(b *testing.B) {
				benchParallel(b, func() op {
					one := new(int) // one per goroutine, not per query
					return func(ctx context.Context) error { return p.select1(ctx, one) }
				})
			})
		}
	})
}

// BenchmarkTPCB runs pgbench's TPC-B-like transaction (tpcb_test.go) from
// parallel goroutines: seven round trips, four of them writes.
func BenchmarkTPCB(b *testing.B) {
	pools := openPools(b, tpcbDatabase(b))
	eachRound(b, func(b *testing.B) {
		for _, p := range pools {
			b.Run("pool="+p.name, func(b *testing.B) {
				benchParallel(b, func() op {
					return func(ctx context.Context) error { return p.tpcb(ctx, drawTPCB()) }
				})
			})
		}
	})
}

// eachRound runs body as sub-benchmark round=1, round=2, ... up to -rounds.
func eachRound(b *testing.B, body func(*testing.B)) {
	for r := range max(*rounds, 1) {
		b.Run("round="+strconv.Itoa(r+1), body)
	}
}

// op is one timed operation.
type op func(context.Context) error

func benchSerial(b *testing.B, op op) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := op(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// benchParallel runs the op that newOp makes for each goroutine.
func benchParallel(b *testing.B, newOp func() op) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		op := newOp()
		for pb.Next() {
			if err := op(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
