package benchmarks

import (
	"context"
	"flag"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/testbed/pgtest"
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
	eachRound(b, pools, func(b *testing.B, pools []*pool) {
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
	eachRound(b, pools, func(b *testing.B, pools []*pool) {
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
	eachRound(b, pools, func(b *testing.B, pools []*pool) {
		for _, p := range pools {
			b.Run("pool="+p.name, func(b *testing.B) {
				benchParallel(b, func() op {
					return func(ctx context.Context) error { return p.tpcb(ctx, drawTPCB()) }
				})
			})
		}
	})
}

// eachRound runs body as sub-benchmark round=1, round=2, ... up to
// -rounds, with the pools in the opposite order every other round, so that
// going first or second in a round (after the other pool's garbage, say)
// falls on every pool alike.
func eachRound(b *testing.B, pools []*pool, body func(*testing.B, []*pool)) {
	reversed := slices.Clone(pools)
	slices.Reverse(reversed)
	for r := range max(*rounds, 1) {
		order := pools
		if r%2 == 1 {
			order = reversed
		}
		b.Run("round="+strconv.Itoa(r+1), func(b *testing.B) { body(b, order) })
	}
}

// op is one timed operation.
type op func(context.Context) error

func benchSerial(b *testing.B, op op) {
	ctx := context.Background()
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if err := op(ctx); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// benchParallel runs the op that newOp makes for each goroutine.
func benchParallel(b *testing.B, newOp func() op) {
	ctx := context.Background()
	b.ReportAllocs()
	cpu := startCPU()
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
	cpu.report(b)
}

// cpuClock measures the CPU time this process spends (every thread: the
// pool's goroutines, the driver's, the garbage collector), not the
// server's. On a machine shared with other work, wall time per operation
// says mostly how much of the CPU the benchmark got; CPU time per
// operation says what the client side costs, which is where the pools
// differ (the server does the same work for all of them).
type cpuClock struct{ start time.Duration }

func startCPU() cpuClock { return cpuClock{processCPU()} }

// report adds the CPU time per operation as the metric cpu-ns/op.
func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
