package runpool

import (
	"context"
	"errors"
	"testing"
	"time"
)

// stuckEnder is a fakeConnector whose EndOrphans gets no answer: it
// blocks until its context ends, as a query on a connection whose path
// went silent does.
type stuckEnder struct {
	*fakeConnector
	entered chan struct{} // one value per EndOrphans call
}

func (s *stuckEnder) Session(c *fakeConn) (Orphan, bool) {
	return Orphan{PID: uint32(c.id), Server: time.Unix(1, 0)}, true
}

func (s *stuckEnder) EndOrphans(ctx context.Context, _ *fakeConn, _ []Orphan) (int, error) {
	s.entered <- struct{}{}
	<-ctx.Done()
	return 0, ctx.Err()
}

// Shutdown does not wait past its context for ending orphans through a
// connection that stopped answering: it cuts the maintainer's attempt,
// as it cuts background dials, and bounds its own by its context.
func TestDrainCutsTheMaintainersOrphanEnding(t *testing.T) {
	s := &stuckEnder{fakeConnector: &fakeConnector{}, entered: make(chan struct{}, 8)}
	p, err := New(Config{MaxConns: 2, MaintainInterval: 5 * time.Millisecond}, s, Hooks[*fakeConn]{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	c, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.Release() // idle and trusted: the maintainer ends orphans through it
	p.orphans.add(notedOrphan{Orphan: Orphan{PID: 99, Server: time.Unix(1, 0)}, at: nanotime()})
	select {
	case <-s.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the maintainer did not try to end the noted orphan")
	}

	const drain = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	start := time.Now()
	_, _ = p.Shutdown(ctx)
	if took := time.Since(start); took >= orphansTimeout {
		t.Fatalf("Shutdown with %v to drain returned after %v: it waited for the maintainer's ending of orphans", drain, took)
	}
}

// breakingEnder is a fakeConnector whose EndOrphans breaks the
// connection it runs on, as a path that resets mid-query does.
type breakingEnder struct{ *fakeConnector }

func (b *breakingEnder) Session(c *fakeConn) (Orphan, bool) {
	return Orphan{PID: uint32(c.id), Server: time.Unix(1, 0)}, true
}

func (b *breakingEnder) EndOrphans(_ context.Context, via *fakeConn, _ []Orphan) (int, error) {
	via.closed.Store(true)
	return 0, errors.New("connection reset by peer")
}

// A new connection that breaks while it ends the noted orphans (the
// pool's own round trip, before it serves) costs its caller nothing but
// a second dial: the caller gets a connection, not the housekeeping's
// error, and the orphans stay noted for the next attempt.
func TestDialBrokenEndingOrphansDialsAgain(t *testing.T) {
	b := &breakingEnder{fakeConnector: &fakeConnector{}}
	p, err := New(Config{MaxConns: 2, MaintainInterval: time.Hour}, b, Hooks[*fakeConn]{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	p.orphans.add(notedOrphan{Orphan: Orphan{PID: 99, Server: time.Unix(1, 0)}, at: nanotime()})
	c, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatalf("acquire when the first dial broke ending orphans: %v", err)
	}
	defer c.Release()
	if c.Value().closed.Load() {
		t.Fatal("the caller got the broken connection")
	}
	if n := b.connects.Load(); n != 2 {
		t.Fatalf("%d dials, want 2: the broken one and the one in its place", n)
	}
	if left := p.orphans.take(); len(left) != 1 {
		t.Fatalf("%d orphans noted after the failed attempt, want the 1 still there", len(left))
	}
}
