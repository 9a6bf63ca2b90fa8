package runpool

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// A dial into the pool (a hedge, the MinConns floor) keeps its dial
// token and wakes no waiting caller when it ends: its connection is not
// in the pool yet, and a caller woken then, or finding the token free,
// would dial one more of its own. createIntoPool gives the token back and
// wakes them once the connection is idle in the pool. A caller's own dial
// wakes them as its token goes back: they may dial.
func TestDialIntoPoolWakesOnceTheConnectionIsThere(t *testing.T) {
	p, _ := openFake(t, Config{MaxConns: 4, MaxConcurrentDials: 1})
	ctx := context.Background()
	type woken struct {
		woke bool
		idle int32
	}
	// park queues a caller for a dial token, as acquire does, and
	// returns what it sees when woken.
	park := func() <-chan woken {
		p.waiters.Add(1)
		w := p.q.newWaiter()
		p.dialSem <- struct{}{} // every token taken: the caller queues
		ch := make(chan woken, 1)
		go func() {
			defer p.waiters.Add(-1)
			res, woke, _ := p.waitTurn(ctx, 0, w)
			if res != nil {
				res.Release()
			}
			ch <- woken{woke, p.p.Stat().IdleResources()}
		}()
		for p.q.len() == 0 {
			time.Sleep(time.Millisecond)
		}
		<-p.dialSem // the token back, waking nobody
		return ch
	}
	dial := func(ctx context.Context) {
		c, err := p.dialOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.connector.Close(c, false)
	}

	ch := park()
	d := &intoPoolDial{}
	dial(context.WithValue(ctx, intoPool{}, d))
	select {
	case w := <-ch:
		t.Fatalf("a dial into the pool woke a caller (woke %v) before its connection was there", w.woke)
	case <-time.After(50 * time.Millisecond):
	}
	if !d.holdsToken.Load() || len(p.dialSem) != 1 {
		t.Fatalf("a dial into the pool gave its token back (holds %v, tokens taken %d) before its connection was there",
			d.holdsToken.Load(), len(p.dialSem))
	}
	<-p.dialSem // as createIntoPool would, waking nobody here
	dial(ctx)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("a caller's dial did not wake the caller waiting for a token")
	}

	ch = park()
	if !p.createIntoPool(nil) {
		t.Fatal("createIntoPool opened nothing")
	}
	select {
	case w := <-ch:
		if w.idle != 1 {
			t.Fatalf("woken with %d idle connections, want the one dialled into the pool", w.idle)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("createIntoPool did not wake the caller waiting for a token")
	}
}

// gatedConnector is a fakeConnector whose connects wait for gate.
type gatedConnector struct {
	fakeConnector
	gate chan struct{}
}

func (g *gatedConnector) Connect(ctx context.Context) (*fakeConn, error) {
	<-g.gate
	return g.fakeConnector.Connect(ctx)
}

// A caller that comes while a dial into the pool (a hedge) holds the only
// dial token is served by that connection: the pool dials once. puddle
// runs the caller's construct when it found no idle connection, which
// may be just before the hedge's connection arrives; the construct then
// finds it idle and leaves it to the caller.
func TestCallerTakesTheConnectionDialledIntoThePool(t *testing.T) {
	const rounds = 200
	twice := 0
	for range rounds {
		g := &gatedConnector{gate: make(chan struct{})}
		p, err := New(Config{MaxConns: 4, MaxConcurrentDials: 1, Logger: slog.New(slog.DiscardHandler)}, g, Hooks[*fakeConn]{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); p.createIntoPool(&p.counters.hedgedDials) }()
		for len(p.dialSem) == 0 { // the hedge holds the token
			time.Sleep(10 * time.Microsecond)
		}
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := p.Acquire(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			c.Release()
		}()
		close(g.gate) // the hedge's dial ends as the caller comes
		wg.Wait()
		if g.connects.Load() > 1 {
			twice++
		}
		p.Close()
	}
	if twice > 0 {
		t.Errorf("%d of %d rounds dialled twice: the caller dialled beside the hedge's connection", twice, rounds)
	}
}
