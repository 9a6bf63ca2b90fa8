package runpool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/pgxadapter"
)

// A burst larger than the dial cap is served by the connections already
// open as they come back, not only by new ones: a caller that finds every
// dial token taken waits for its turn instead of queueing for a dial of
// its own. With slow dials (a path with latency: a dial is several round
// trips, a query one) the burst then needs far fewer connections than
// callers. Before, each caller waited for its own dial: 16 callers, 16
// connections, one dial after another.
func TestBurstIsServedByReturnedConnections(t *testing.T) {
	proxy := startProxy(t, faultproxy.Config{Latency: 10 * time.Millisecond})
	p, _, _ := openPool(t, runpool.Config{MaxConns: 16, MaxConcurrentDials: 1}, through(proxy))

	const n = 16
	ctx := ctxT(t, 20*time.Second)
	before := p.Stat().NewConnsCount()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Exec(ctx, "SELECT pg_sleep(0.005)")
			errs <- err
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	opened := p.Stat().NewConnsCount() - before
	t.Logf("%d requests served in %v with %d new connections (one dial at a time)", n, took.Round(time.Millisecond), opened)
	if opened > n/2 {
		t.Fatalf("%d new connections for %d short requests: callers waited for dials of their own instead of the connections coming back", opened, n)
	}
}

// A probe that does not answer (a NAT black hole) starts a fresh
// connection in the background after a quarter of its deadline, and the
// caller, once its probe fails, is served by that connection instead of
// starting a dial of its own only then.
func TestSlowProbeHedgesADial(t *testing.T) {
	const natIdle = 300 * time.Millisecond
	// One dial at a time: the caller cannot start its own while the
	// hedged one runs. A probe deadline of a dial's time, up to 2 s.
	proxy := startProxy(t, faultproxy.Config{Mode: faultproxy.Blackhole, IdleTimeout: natIdle, Latency: 10 * time.Millisecond})
	p, _, _ := openPool(t, runpool.Config{MaxConns: 4, MaxConcurrentDials: 1, ProbeTimeout: 2 * time.Second, ProbeAfterIdle: 100 * time.Millisecond},
		through(proxy))

	ctx := ctxT(t, 20*time.Second)
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// The NAT forgets the idle connection's flow; and the connection is
	// older than any probe deadline (at most ProbeTimeout), since one
	// dialled within its probe's deadline gets no hedge.
	time.Sleep(2*time.Second + 100*time.Millisecond)
	before := p.Stat()
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	after := p.Stat()
	probesFailed := after.ProbeFailureCount() - before.ProbeFailureCount()
	hedged := after.HedgedDialCount() - before.HedgedDialCount()
	opened := after.NewConnsCount() - before.NewConnsCount()
	t.Logf("probes failed %d, hedged dials %d, new connections %d", probesFailed, hedged, opened)
	if probesFailed != 1 {
		t.Fatalf("%d probes failed, want 1 (the black-holed connection)", probesFailed)
	}
	if hedged != 1 || opened != 1 {
		t.Fatalf("hedged dials %d, new connections %d: want the one hedged connection to serve the caller", hedged, opened)
	}
}

// While connections come back faster than a dial ends, a caller with a
// dial token free still waits for one rather than dialing
// (returnBeatsDial): a burst of short queries is then served by the
// connections already open. Dials here take 150 ms (an AfterConnect
// hook sleeps) and a query 10 ms. The first burst teaches the pool both
// (callers wait for dial tokens, so the returned connections' use is
// timed); the second, twice as large and right after, needs no new
// connection. With four dial tokens free and the rule off, its first
// callers dial at once (4 new connections, checked by breaking the rule
// by hand).
func TestWaitsForAReturningConnectionRatherThanDialing(t *testing.T) {
	p, _, _ := openPool(t, runpool.Config{MaxConns: 32, MaxConcurrentDials: 4}, afterConnect(slowDials(150*time.Millisecond)))

	ctx := ctxT(t, 20*time.Second)
	first := burst(t, ctx, p, 8)
	second := burst(t, ctx, p, 16)
	t.Logf("first burst of 8: %d new connections; second of 16: %d", first, second)
	if second > 1 {
		t.Fatalf("%d new connections for a burst served faster by those open: callers dialed rather than wait", second)
	}
}

// A caller told a connection comes back sooner waits for it longer than
// one dial's time (returnPatience) before it dials anyway. With one
// dial's time, the last callers of a burst, whose turn the estimate puts
// at about a dial away, lost the race for returning connections to the
// others, dialed, and paid a new backend's start and first query: after a
// freeze the simulator's slowest requests were those. Here dials take
// 300 ms and every connection is held for 1.5 dials' time after the
// caller arrives; it is then served by the one coming back, where before
// it dialed at 300 ms (one new connection).
func TestWaitsForAReturningConnectionLongerThanADial(t *testing.T) {
	const dial = 300 * time.Millisecond
	p, _, _ := openPool(t, runpool.Config{MaxConns: 32, MaxConcurrentDials: 4}, afterConnect(slowDials(dial)))
	ctx := ctxT(t, 20*time.Second)
	burst(t, ctx, p, 8) // teaches the pool how long a dial takes and a borrower keeps its connection

	held := acquireAll(t, ctx, p.Acquire, int(p.Stat().TotalConns()))
	before := p.Stat().NewConnsCount()
	done := acquireInBackground(ctx, p.Acquire)
	time.Sleep(dial * 3 / 2)
	for _, c := range held {
		c.Release()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if opened := p.Stat().NewConnsCount() - before; opened != 0 {
		t.Fatalf("%d new connections: the caller dialed after one dial's time instead of waiting for a connection coming back", opened)
	}
}

// slowDials is an AfterConnect hook that makes every dial take d.
func slowDials(d time.Duration) func(context.Context, *pgx.Conn) error {
	return func(ctx context.Context, _ *pgx.Conn) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// burst runs n concurrent 10 ms queries on p and returns how many
// connections p opened for them.
func burst(t *testing.T, ctx context.Context, p *pgxadapter.Pool, n int) int64 {
	t.Helper()
	before := p.Stat().NewConnsCount()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := p.Exec(ctx, "SELECT pg_sleep(0.01)"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	return p.Stat().NewConnsCount() - before
}
