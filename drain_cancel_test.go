package runpool_test

import (
	"context"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
)

// A drain with little time left still cancels a running query early
// enough for the cancel to reach the server, the error to come back and
// the holder to release before the deadline: Shutdown returns no error
// and abandons nothing. Each case slows the path through a fault proxy:
// one from the start (a distant server, which the pool's estimates of
// its dials and round trips know), one only after the pool measured a
// fast path (a slower moment, such as a loaded machine, which they do
// not).
func TestDrainCancelsInTimeWithLittleTimeLeft(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after time.Duration // the proxy's latency each way, before and after the pool warms up
		left          time.Duration // the drain's budget
	}{
		{name: "distant server", before: 100 * time.Millisecond, after: 100 * time.Millisecond, left: time.Second},
		{name: "slower than measured", after: 40 * time.Millisecond, left: 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := startProxy(t, faultproxy.Config{Latency: tc.before})
			p, srv, user := openPool(t, runpool.Config{MaxConns: 2}, through(proxy))
			ctx := ctxT(t, 30*time.Second)
			c, err := p.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			proxy.SetLatency(tc.after)
			queryErr := make(chan error, 1)
			go func() {
				_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
				c.Release()
				queryErr <- err
			}()
			waitFor(t, 10*time.Second, "the query never ran", func() bool {
				return srv.QueryInt(t, `SELECT count(*) FROM pg_stat_activity
					WHERE usename = $1 AND state = 'active' AND query LIKE '%pg_sleep%'`, user) == 1
			})
			sctx, cancel := context.WithTimeout(ctx, tc.left)
			defer cancel()
			start := time.Now()
			rep, err := p.Shutdown(sctx)
			if err != nil || rep.Cancelled != 1 || rep.Abandoned != 0 {
				t.Errorf("Shutdown after %v: report %+v, err %v; want 1 cancelled, none abandoned, no error",
					time.Since(start).Round(time.Millisecond), rep, err)
			}
			if err := <-queryErr; err == nil {
				t.Error("the query ran to its end; want it cancelled")
			}
		})
	}
}
