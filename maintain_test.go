package runpool_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// The maintainer dialing the MinConns floor through a slow path is not a
// freeze: before, each floor dial blocked the ticker that measures gaps,
// the next tick counted a freeze, and with PathIdleTimeout set the whole
// floor was discarded as stale.
func TestMinConnsFloorThroughASlowPathIsNoFreeze(t *testing.T) {
	const dial = 400 * time.Millisecond // each floor dial; past FreezeThreshold and PathIdleTimeout
	var slow atomic.Bool
	p, _, _ := openPool(t, runpool.Config{
		MaxConns: 4, MinConns: 4, MaintainInterval: 20 * time.Millisecond,
		FreezeThreshold: 150 * time.Millisecond, PathIdleTimeout: 200 * time.Millisecond,
	}, afterConnect(func(context.Context, *pgx.Conn) error {
		if slow.Load() {
			time.Sleep(dial)
		}
		return nil
	}))
	slow.Store(true)
	ctx := ctxT(t, 30*time.Second)
	waitFor(t, 15*time.Second, "the MinConns floor", func() bool { st := p.Stat(); return st.TotalConns() == 4 && st.ConstructingConns() == 0 })
	time.Sleep(100 * time.Millisecond) // a few ticks after the last dial
	before := p.Stat()
	held := acquireAll(t, ctx, p.Acquire, 4)
	for _, c := range held {
		c.Release()
	}
	after := p.Stat()
	if n := after.FreezeCount(); n != 0 {
		t.Errorf("%d freezes counted while the maintainer dialed the floor; the process never stopped", n)
	}
	if n := after.StaleDiscardCount(); n != 0 {
		t.Errorf("%d floor connections discarded as stale", n)
	}
	if n := after.NewConnsCount() - before.NewConnsCount(); n != 0 {
		t.Errorf("%d connections dialed to replace the floor", n)
	}
}
