package runpool_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// A connection released during the drain goes to a caller that was
// already waiting for one (here in puddle, the pool being full) instead
// of being closed while that caller dials a new one. Before, both
// waiting callers dialed.
func TestDrainHandsReturnedConnectionsToCallersWaitingForASlot(t *testing.T) {
	p, srv, user := openPool(t, runpool.Config{MaxConns: 2, DrainTimeout: 10 * time.Second})
	ctx := ctxT(t, 20*time.Second)
	held := acquireAll(t, ctx, p.Acquire, 2)
	before := p.Stat().NewConnsCount()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
				t.Errorf("caller waiting when the drain began: %v", err)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // both wait for a slot
	drained := make(chan runpool.DrainReport, 1)
	go func() {
		rep, _ := p.Shutdown(ctx)
		drained <- rep
	}()
	time.Sleep(50 * time.Millisecond)
	for _, c := range held {
		c.Release()
	}
	wg.Wait()
	rep := <-drained
	if got := p.Stat().NewConnsCount() - before; got != 0 {
		t.Errorf("%d connections dialed for callers that released connections could serve", got)
	}
	if rep.Abandoned != 0 {
		t.Errorf("drain abandoned %d connections", rep.Abandoned)
	}
	waitFor(t, 5*time.Second, "backends left after the drain", func() bool { return srv.Backends(t, user) == 0 })
}

// The same for a caller waiting for its turn to dial: the dial token is
// held by another caller's slow dial (an AfterConnect hook sleeps 1 s
// once armed). The released connection serves it at once; before, it
// waited for the token and then dialed for another second.
func TestDrainHandsReturnedConnectionsToCallersWaitingToDial(t *testing.T) {
	var slow atomic.Bool
	p, _, _ := openPool(t, runpool.Config{MaxConns: 8, MaxConcurrentDials: 1, DrainTimeout: 10 * time.Second}, afterConnect(func(context.Context, *pgx.Conn) error {
		if slow.Load() {
			time.Sleep(time.Second)
		}
		return nil
	}))
	ctx := ctxT(t, 20*time.Second)
	a := acquireAll(t, ctx, p.Acquire, 1)[0]
	slow.Store(true)
	before := p.Stat().NewConnsCount()
	var wg sync.WaitGroup
	took := make([]time.Duration, 2)
	for i := range 2 { // one dials (1 s), the other waits for its turn
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
				t.Errorf("caller waiting when the drain began: %v", err)
			}
			took[i] = time.Since(start)
		}()
		time.Sleep(50 * time.Millisecond)
	}
	go func() { _, _ = p.Shutdown(ctx) }()
	time.Sleep(50 * time.Millisecond)
	a.Release()
	wg.Wait()
	fastest := min(took[0], took[1])
	t.Logf("callers served in %v and %v", took[0].Round(time.Millisecond), took[1].Round(time.Millisecond))
	if got := p.Stat().NewConnsCount() - before; got != 1 {
		t.Errorf("%d connections dialed, want 1 (the dial under way when the drain began)", got)
	}
	if fastest > 800*time.Millisecond {
		t.Errorf("the caller waiting for its turn was served after %v, not by the released connection", fastest)
	}
}

// hangingDials returns an AfterConnect hook that, once hang is set, holds
// every new connection until its dial's context ends: a dial into a
// black hole, which only DialTimeout or a cancel ends.
func hangingDials(hang *atomic.Bool) func(context.Context, *pgx.Conn) error {
	return func(ctx context.Context, _ *pgx.Conn) error {
		if hang.Load() {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
}

// The drain cuts the dials no caller waits for (here the MinConns floor's,
// which the maintainer runs) as it begins: before, Shutdown first waited
// for the maintainer, and so for the dial, until DialTimeout.
func TestDrainCutsBackgroundDials(t *testing.T) {
	var hang atomic.Bool
	// BudgetCheck error: opened by runpool.Open, which dials the first
	// connection before returning and leaves the floor to the maintainer.
	p, _, _ := openPool(t, runpool.Config{MaxConns: 3, MinConns: 2, MaintainInterval: 20 * time.Millisecond, DialTimeout: 20 * time.Second,
		BudgetCheck: runpool.BudgetCheckError}, afterConnect(hangingDials(&hang)))
	ctx := ctxT(t, 30*time.Second)
	// The first connection is open; the floor's second dial hangs.
	hang.Store(true)
	waitFor(t, 5*time.Second, "the maintainer dialing", func() bool { return p.Stat().ConstructingConns() == 1 })
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	rep, err := p.Shutdown(sctx)
	if took := time.Since(start); err != nil || took > time.Second {
		t.Errorf("Shutdown took %v, err %v; want well under a second, no error", took.Round(time.Millisecond), err)
	}
	if rep.ClosedIdle != 1 || rep.Abandoned != 0 {
		t.Errorf("drain report %+v, want the idle connection closed, nothing abandoned", rep)
	}
}

// From its cancel point the drain stops waiting for a caller's dial that
// does not end (a black hole): it returns by its deadline without an
// error, reports the dial cut, and the caller gets an error at once.
// Before, the drain waited for the dial until its deadline and failed.
func TestDrainCutsACallersHangingDialAtTheCancelPoint(t *testing.T) {
	var hang atomic.Bool
	p, _, _ := openPool(t, runpool.Config{MaxConns: 2, DialTimeout: 20 * time.Second}, afterConnect(hangingDials(&hang)))
	ctx := ctxT(t, 30*time.Second)
	held, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hang.Store(true)
	callerErr := acquireInBackground(ctx, p.Acquire) // dials, and hangs
	waitFor(t, 5*time.Second, "the caller dialing", func() bool { return p.Stat().ConstructingConns() == 1 })
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	drained := make(chan error, 1)
	var rep runpool.DrainReport
	go func() {
		var err error
		rep, err = p.Shutdown(sctx)
		drained <- err
	}()
	held.Release()
	if err := <-drained; err != nil {
		t.Errorf("Shutdown: %v after %v; want no error", err, time.Since(start).Round(time.Millisecond))
	}
	if rep.DialsCut != 1 || rep.Abandoned != 0 {
		t.Errorf("drain report %+v, want 1 dial cut, nothing abandoned", rep)
	}
	select {
	case err := <-callerErr:
		if err == nil {
			t.Error("the caller whose dial was cut got a connection")
		}
	case <-time.After(2 * time.Second):
		t.Error("the caller whose dial was cut still waits 2 s after the drain")
	}
}
