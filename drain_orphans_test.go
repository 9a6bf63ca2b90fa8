package runpool

import (
	"context"
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
