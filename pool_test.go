package runpool_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/pgxadapter"
)

func TestAcquireRelease(t *testing.T) {
	p, _, _ := openPool(t, runpool.Config{MaxConns: 2})
	ctx := ctxT(t, 10*time.Second)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	if s := p.Stat(); s.AcquiredConns() != 1 || s.IdleConns() != 0 {
		t.Fatalf("while borrowed: acquired %d idle %d", s.AcquiredConns(), s.IdleConns())
	}
	c.Release()
	c.Release() // a second Release is harmless
	if s := p.Stat(); s.AcquiredConns() != 0 || s.IdleConns() != 1 {
		t.Fatalf("after release: acquired %d idle %d", s.AcquiredConns(), s.IdleConns())
	}
	// The same connection serves the next checkout.
	c2, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c2.Release()
	if n := p.Stat().NewConnsCount(); n != 1 {
		t.Fatalf("opened %d connections, want 1", n)
	}
}

// At the maximum, waiters are served as others release, and a waiter
// whose context ends leaves without taking a slot with it.
func TestWaitersAtMaximum(t *testing.T) {
	p, srv, user := openPool(t, runpool.Config{MaxConns: 2})
	ctx := ctxT(t, 20*time.Second)
	held := acquireAll(t, ctx, p.Acquire, 2)
	a, b := held[0], held[1]

	// A waiter that gives up.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter past its deadline: %v, want DeadlineExceeded", err)
	}

	// Three waiters, served one by one as a and b come back.
	served := make(chan *pgxadapter.Conn, 3)
	for range 3 {
		go func() {
			c, err := p.Acquire(ctx)
			if err != nil {
				t.Error(err)
				served <- nil
				return
			}
			served <- c
		}()
	}
	select {
	case <-served:
		t.Fatal("a waiter was served while both connections were borrowed")
	case <-time.After(150 * time.Millisecond):
	}
	a.Release()
	c1 := <-served
	b.Release()
	c2 := <-served
	c1.Release()
	c3 := <-served
	for _, c := range []*pgxadapter.Conn{c2, c3} {
		if c == nil {
			t.FailNow()
		}
		c.Release()
	}
	if s := p.Stat(); s.TotalConns() != 2 || s.AcquiredConns() != 0 || s.CanceledAcquireCount() != 1 {
		t.Fatalf("total %d acquired %d canceled %d; want 2, 0, 1", s.TotalConns(), s.AcquiredConns(), s.CanceledAcquireCount())
	}
	if n := srv.Backends(t, user); n != 2 {
		t.Fatalf("%d backends on the server, want 2 (MaxConns)", n)
	}
}

func TestIdleExpiry(t *testing.T) {
	p, srv, user := openPool(t, runpool.Config{
		MaxConns: 3, MaxConnIdleTime: 300 * time.Millisecond, MaintainInterval: 50 * time.Millisecond,
	})
	ctx := ctxT(t, 10*time.Second)
	var conns []*pgxadapter.Conn
	for range 3 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	waitFor(t, 5*time.Second, "idle connections not closed", func() bool { return p.Stat().TotalConns() == 0 })
	if n := p.Stat().MaxIdleDestroyCount(); n != 3 {
		t.Fatalf("MaxIdleDestroyCount = %d, want 3", n)
	}
	waitFor(t, 5*time.Second, "backends left on the server", func() bool { return srv.Backends(t, user) == 0 })
}

// A cohort opened together expires spread over the jitter window, not all
// at once.
func TestLifetimeJitterSpreadsExpiry(t *testing.T) {
	const n = 8
	p, _, _ := openPool(t, runpool.Config{
		MaxConns: n, MaxConnLifetime: 300 * time.Millisecond, MaxConnLifetimeJitter: 1500 * time.Millisecond,
		MaxConnIdleTime: time.Minute, MaintainInterval: 20 * time.Millisecond,
	})
	ctx := ctxT(t, 10*time.Second)
	var conns []*pgxadapter.Conn
	for range n {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	start := time.Now()
	for _, c := range conns {
		c.Release()
	}
	var expiries []time.Duration
	last := int32(n)
	waitFor(t, 5*time.Second, "connections outlived MaxConnLifetime+jitter", func() bool {
		cur := p.Stat().TotalConns()
		for ; last > cur; last-- {
			expiries = append(expiries, time.Since(start))
		}
		return cur == 0
	})
	sort.Slice(expiries, func(i, j int) bool { return expiries[i] < expiries[j] })
	spread := expiries[n-1] - expiries[0]
	t.Logf("expiries after release: %v (spread %v)", expiries, spread)
	if spread < 400*time.Millisecond {
		t.Fatalf("%d connections expired within %v of each other; jitter should spread them over ~1.5s", n, spread)
	}
	if p.Stat().MaxLifetimeDestroyCount() != n {
		t.Fatalf("MaxLifetimeDestroyCount = %d, want %d", p.Stat().MaxLifetimeDestroyCount(), n)
	}
}

// A connection past MaxConnLifetime is closed on checkout, not handed
// out: before, the fast checkout path skipped the lifetime and closed it
// only on release (or at a maintainer tick).
func TestLifetimeCheckedOnEveryCheckout(t *testing.T) {
	const lifetime = 300 * time.Millisecond
	p, _, _ := openPool(t, runpool.Config{
		MaxConns: 2, MaxConnLifetime: lifetime, MaxConnLifetimeJitter: time.Millisecond,
		MaintainInterval: time.Hour, ProbeAfterIdle: time.Hour, // neither the maintainer nor a probe finds it first
	})
	ctx := ctxT(t, 10*time.Second)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := c.Conn().PgConn().PID()
	c.Release()
	time.Sleep(lifetime + 100*time.Millisecond)
	before := p.Stat().MaxLifetimeDestroyCount()
	c, err = p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if c.Conn().PgConn().PID() == old {
		t.Errorf("Acquire handed out backend %d past its %v lifetime", old, lifetime)
	}
	if n := p.Stat().MaxLifetimeDestroyCount() - before; n != 1 {
		t.Errorf("MaxLifetimeDestroyCount went up by %d on checkout, want 1", n)
	}
}

// Close waits for borrowed connections, then closes them; the server is
// left with no backend of the pool.
func TestCloseWhileBorrowed(t *testing.T) {
	p, srv, user := openPool(t, runpool.Config{MaxConns: 3, DrainTimeout: 10 * time.Second})
	ctx := ctxT(t, 20*time.Second)
	a, _ := p.Acquire(ctx)
	b, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Acquire(ctx)
	c.Release() // one idle

	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	waitFor(t, 5*time.Second, "idle connection not closed at once", func() bool { return p.Stat().IdleConns() == 0 })
	// The borrowed connections keep working during the drain.
	if _, err := a.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("borrowed connection during Close: %v", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while connections were borrowed")
	case <-time.After(200 * time.Millisecond):
	}
	a.Release()
	b.Release()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after every connection came back")
	}
	if _, err := p.Acquire(ctx); !errors.Is(err, runpool.ErrClosed) {
		t.Fatalf("Acquire after Close: %v, want ErrClosed", err)
	}
	waitFor(t, 5*time.Second, "backends left after Close", func() bool { return srv.Backends(t, user) == 0 })
}

func TestStatCounts(t *testing.T) {
	p, _, _ := openPool(t, runpool.Config{MaxConns: 4})
	ctx := ctxT(t, 10*time.Second)
	before := p.Stat().AcquireCount() // New's reachability check
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := p.Stat()
	if got := s.AcquireCount() - before; got != 100 {
		t.Errorf("AcquireCount grew by %d, want 100", got)
	}
	if s.MaxConns() != 4 || s.AcquiredConns() != 0 || s.TotalConns() != s.IdleConns() || s.TotalConns() < 1 || s.TotalConns() > 4 {
		t.Errorf("max %d acquired %d total %d idle %d", s.MaxConns(), s.AcquiredConns(), s.TotalConns(), s.IdleConns())
	}
	if s.NewConnsCount() != int64(s.TotalConns()) {
		t.Errorf("NewConnsCount %d, TotalConns %d: nothing was closed, so they should match", s.NewConnsCount(), s.TotalConns())
	}
}

// TestFirstConnectionIsCheckedLikeAnyOther: the connection Open dials
// to check the server is an idle connection of the pool from then on. A
// first request that comes after the server ended it (or a NAT forgot
// it) gets a checked connection, not that one.
func TestFirstConnectionIsCheckedLikeAnyOther(t *testing.T) {
	// BudgetCheck error: the start-up check reads the server, so the pool
	// opens with runpool.Open, which dials.
	p, srv, user := openPool(t, runpool.Config{BudgetCheck: runpool.BudgetCheckError})
	if st := p.Stat(); st.IdleConns() != 1 || st.TotalConns() != 1 {
		t.Fatalf("after Open: %d idle of %d, want Open's connection idle in the pool", st.IdleConns(), st.TotalConns())
	}
	if n := srv.TerminateBackends(t, user); n != 1 {
		t.Fatalf("terminated %d backends, want 1", n)
	}
	waitFor(t, 10*time.Second, "the terminated backend is still there", func() bool { return srv.Backends(t, user) == 0 })
	if _, err := p.Exec(ctxT(t, 10*time.Second), "SELECT 1"); err != nil {
		t.Fatalf("first query after the server ended Open's connection: %v", err)
	}
	if st := p.Stat(); st.StaleDiscardCount() != 1 {
		t.Errorf("stale discards %d, want Open's connection discarded", st.StaleDiscardCount())
	}
}
