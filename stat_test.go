package runpool_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// AcquireCount counts the connections handed to callers, not the
// checkouts the pool made for them: before, a connection closed on
// checkout (here past its lifetime) counted as a second acquire.
func TestAcquireCountCountsSuccessesOnly(t *testing.T) {
	const lifetime = 200 * time.Millisecond
	p, _, _ := openPool(t, runpool.Config{
		MaxConns: 2, MaxConnLifetime: lifetime, MaxConnLifetimeJitter: time.Millisecond,
		MaintainInterval: time.Hour,
	})
	ctx := ctxT(t, 10*time.Second)
	before := p.Stat().AcquireCount()
	c := acquireAll(t, ctx, p.Acquire, 1)[0]
	c.Release()
	time.Sleep(lifetime + 100*time.Millisecond)
	c = acquireAll(t, ctx, p.Acquire, 1)[0] // closes the expired one, dials another
	c.Release()
	s := p.Stat()
	if s.MaxLifetimeDestroyCount() != 1 {
		t.Fatalf("MaxLifetimeDestroyCount %d, want 1 (the connection closed on checkout)", s.MaxLifetimeDestroyCount())
	}
	if got := s.AcquireCount() - before; got != 2 {
		t.Errorf("AcquireCount grew by %d for 2 successful acquires", got)
	}
}

// CanceledAcquireCount counts an acquire cancelled wherever it waited:
// before, only waits inside puddle (a full pool) counted, not the pool's
// own waits for a dial turn or out a 53300.
func TestCanceledAcquireCountCountsEveryCancelledWait(t *testing.T) {
	cancelledWhile := func(t *testing.T, acquire func(context.Context) error, waiting func() bool) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- acquire(ctx) }()
		waitFor(t, 5*time.Second, "the caller waiting", waiting)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("acquire cancelled while waiting: %v, want context.Canceled", err)
		}
	}

	t.Run("dial turn", func(t *testing.T) {
		var slow atomic.Bool
		p, _, _ := openPool(t, runpool.Config{MaxConns: 4, MaxConcurrentDials: 1}, afterConnect(func(ctx context.Context, _ *pgx.Conn) error {
			if slow.Load() {
				select {
				case <-time.After(3 * time.Second):
				case <-ctx.Done():
				}
			}
			return nil
		}))
		ctx := ctxT(t, 20*time.Second)
		held := acquireAll(t, ctx, p.Acquire, 1)[0]
		defer held.Release()
		slow.Store(true)
		dialer := acquireInBackground(ctx, p.Acquire) // holds the one dial token
		waitFor(t, 5*time.Second, "the first caller dialing", func() bool { return p.Stat().ConstructingConns() == 1 })
		before := p.Stat().CanceledAcquireCount()
		cancelledWhile(t, func(ctx context.Context) error { _, err := p.Acquire(ctx); return err },
			func() bool { time.Sleep(100 * time.Millisecond); return true })
		if got := p.Stat().CanceledAcquireCount() - before; got != 1 {
			t.Errorf("CanceledAcquireCount grew by %d for an acquire cancelled waiting for its dial turn", got)
		}
		<-dialer
	})

	t.Run("backpressure", func(t *testing.T) {
		srv := pgtest.Shared(t)
		user := srv.CreateRole(t, 1) // the role's second connection gets 53300
		p, _, _ := openPool(t, runpool.Config{MaxConns: 4}, onServer(srv, user))
		ctx := ctxT(t, 20*time.Second)
		held := acquireAll(t, ctx, p.Acquire, 1)[0]
		defer held.Release()
		before := p.Stat()
		cancelledWhile(t, func(ctx context.Context) error { _, err := p.Acquire(ctx); return err },
			func() bool { return p.Stat().BackoffCount() > before.BackoffCount() })
		if got := p.Stat().CanceledAcquireCount() - before.CanceledAcquireCount(); got != 1 {
			t.Errorf("CanceledAcquireCount grew by %d for an acquire cancelled backing off a 53300", got)
		}
	})

	t.Run("full pool", func(t *testing.T) {
		p, _, _ := openPool(t, runpool.Config{MaxConns: 1})
		ctx := ctxT(t, 20*time.Second)
		held := acquireAll(t, ctx, p.Acquire, 1)[0]
		defer held.Release()
		before := p.Stat().CanceledAcquireCount()
		cancelledWhile(t, func(ctx context.Context) error { _, err := p.Acquire(ctx); return err },
			func() bool { time.Sleep(100 * time.Millisecond); return true })
		if got := p.Stat().CanceledAcquireCount() - before; got != 1 {
			t.Errorf("CanceledAcquireCount grew by %d for an acquire cancelled waiting for a full pool", got)
		}
	})
}
