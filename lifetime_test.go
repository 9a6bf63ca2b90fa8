package runpool_test

import (
	"testing"
	"time"

	"github.com/runpool/runpool"
)

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
