package runpool

import (
	"context"
	"testing"
	"time"
)

// A dial into the pool (a hedge, the MinConns floor) wakes no waiting
// caller as its dial token goes back: its connection is not in the pool
// yet, and a caller woken then would dial one more of its own.
// createIntoPool wakes them once the connection is idle in the pool. A
// caller's own dial wakes them as its token goes back: they may dial.
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
	dial(context.WithValue(ctx, intoPool{}, true))
	select {
	case w := <-ch:
		t.Fatalf("a dial into the pool woke a caller (woke %v) before its connection was there", w.woke)
	case <-time.After(50 * time.Millisecond):
	}
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
