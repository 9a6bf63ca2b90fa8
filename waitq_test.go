package runpool_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// Callers waiting for their turn are served in the order they came as
// connections come back: before, every waiter was woken at each return
// and they raced for it, so a caller could lose again and again.
func TestWaitersAreServedInOrder(t *testing.T) {
	const callers = 8
	var slow atomic.Bool
	slowDial := make(chan struct{}, 1)
	p, _, _ := openPool(t, runpool.Config{MaxConns: 16, MaxConcurrentDials: 1}, afterConnect(func(ctx context.Context, _ *pgx.Conn) error {
		if slow.Load() {
			select {
			case slowDial <- struct{}{}:
			default:
			}
			select { // holds the one dial token while the burst is served
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
			}
		}
		return nil
	}))
	ctx := ctxT(t, 30*time.Second)
	held := acquireAll(t, ctx, p.Acquire, 1)[0]
	slow.Store(true)
	dialer := acquireInBackground(ctx, p.Acquire)
	// The dial holds the token once its AfterConnect runs: a constructing
	// connection is counted before its dial takes the token, and a caller
	// that came in between would take it and be the slow dial itself.
	select {
	case <-slowDial:
	case <-ctx.Done():
		t.Fatal("the slow dial never began")
	}

	var mu sync.Mutex
	var served []int
	waits := make([]time.Duration, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c, err := p.Acquire(ctx)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			waits[i] = time.Since(start)
			mu.Lock()
			served = append(served, i)
			mu.Unlock()
			_, err = c.Exec(ctx, "SELECT pg_sleep(0.01)")
			c.Release()
			if err != nil {
				t.Error(err)
			}
		}()
		time.Sleep(30 * time.Millisecond) // arrivals in a known order
	}
	held.Release()
	wg.Wait()
	sorted := slices.Sorted(slices.Values(waits))
	t.Logf("served in order %v; wait median %v, max %v", served,
		sorted[callers/2].Round(time.Millisecond), sorted[callers-1].Round(time.Millisecond))
	if !slices.IsSorted(served) {
		t.Errorf("callers served in order %v, want the order they came in", served)
	}
	<-dialer
}
