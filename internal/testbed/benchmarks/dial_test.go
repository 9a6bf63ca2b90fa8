package benchmarks

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// BenchmarkConcurrentDials prices what a pool pays after a freeze, when
// every idle connection is dead and a burst needs fresh ones: n pgx
// connections opened at once (TCP, startup, a new backend on the
// server), then closed. One op is the whole batch; ns/op divided by n is
// the time per connection. On a machine whose cores the server shares
// (the simulator's, CI's), backends start one after another, so a batch
// of n takes about n times one dial and more than that beyond 2: the
// reason runpool's MaxConcurrentDials defaults to 2, and the floor under
// the simulator's p99 after a freeze.
//
//	go test -run '^$' -bench ConcurrentDials -count 10 ./internal/testbed/benchmarks | benchstat -col /n -
func BenchmarkConcurrentDials(b *testing.B) {
	cc, err := pgx.ParseConfig(pgtest.Shared(b).URL())
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 2, 4, 8} {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			ctx := context.Background()
			cpu := startCPU()
			for b.Loop() {
				var wg sync.WaitGroup
				conns := make([]*pgx.Conn, n)
				for i := range n {
					wg.Go(func() {
						c, err := pgx.ConnectConfig(ctx, cc)
						if err != nil {
							b.Error(err)
							return
						}
						conns[i] = c
					})
				}
				wg.Wait()
				b.StopTimer()
				for _, c := range conns {
					if c != nil {
						c.Close(ctx)
					}
				}
				time.Sleep(50 * time.Millisecond) // the backends exit off the clock
				b.StartTimer()
			}
			cpu.report(b)
		})
	}
}
