package runpool

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// roleConnector is a fakeConnector whose connections are on a server of
// the test's choosing (OrphanEnder's Session tells them apart) and which
// reports the demotions the test marks (ServerWitness).
type roleConnector struct {
	*fakeConnector
	server  atomic.Int64 // the server new connections reach
	mu      sync.Mutex
	on      map[int64]int64 // connection id -> server
	demoted map[int64]bool
	ends    atomic.Int64 // EndOrphans calls
}

func (r *roleConnector) Connect(ctx context.Context) (*fakeConn, error) {
	c, err := r.fakeConnector.Connect(ctx)
	if err == nil {
		r.mu.Lock()
		r.on[c.id] = r.server.Load()
		r.mu.Unlock()
	}
	return c, err
}

func (r *roleConnector) Demoted(c *fakeConn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.demoted[c.id]
}

func (r *roleConnector) EndedIdle(*fakeConn) bool { return false }

func (r *roleConnector) Session(c *fakeConn) (Orphan, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Orphan{PID: uint32(c.id), Server: time.Unix(r.on[c.id], 0)}, true
}

func (r *roleConnector) EndOrphans(context.Context, *fakeConn, []Orphan) (int, error) {
	r.ends.Add(1)
	return 0, nil
}

// TestFailoverDemotedServerConnsDiscarded: the first connection found
// demoted condemns the connections opened before to its server, idle
// ones at once and borrowed ones as they come back, and no other: a
// connection to another server stays, and none is noted as an orphan.
func TestFailoverDemotedServerConnsDiscarded(t *testing.T) {
	r := &roleConnector{fakeConnector: &fakeConnector{}, on: map[int64]int64{}, demoted: map[int64]bool{}}
	r.server.Store(1)
	p, err := New(Config{MaxConns: 8}, r, Hooks[*fakeConn]{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx := context.Background()
	var conns []*Conn[*fakeConn]
	for i := range 5 {
		if i == 4 {
			r.server.Store(2) // the name moved
		}
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Idle: two on server 1, the one on server 2; borrowed: two on server 1.
	conns[0].Release()
	conns[1].Release()
	conns[4].Release()
	r.mu.Lock()
	r.demoted[conns[2].Value().id] = true
	r.mu.Unlock()
	conns[2].Release() // refused a write: demoted
	conns[3].Release() // on the demoted server, opened before
	deadline := time.Now().Add(2 * time.Second)
	for r.closes.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := r.closes.Load(); n != 4 {
		t.Fatalf("%d connections closed, want the 4 on the demoted server", n)
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Session(c.Value()); s.Server.Unix() != 2 {
		t.Errorf("after the demotion the pool handed out a connection to server %d", s.Server.Unix())
	}
	if p.Stat().TotalConns() != 1 || r.connects.Load() != 5 {
		t.Errorf("total %d connections after %d dials, want the 1 on server 2 and no new dial", p.Stat().TotalConns(), r.connects.Load())
	}
	c.Release()
	if n := len(p.orphans.take()); n != 0 {
		t.Errorf("%d sessions noted as orphans", n)
	}
	if p.fo.demotions.Load() != 1 || p.fo.discards.Load() != 4 {
		t.Errorf("demotions %d, discards %d; want 1 and 4", p.fo.demotions.Load(), p.fo.discards.Load())
	}
}
