package runpool

import (
	"context"
	"testing"
	"time"
)

// A caller that finds every connection borrowed waits for one to come back
// while its turn, as the estimates put it, comes within returnPatience
// dials' time, and dials at once beyond that. The estimates are set by
// hand (a borrower keeps its connection use, a dial takes 200 ms) and the
// one connection is held; the caller's turn is then use away. At 300 ms,
// between one dial and two, it waits and is served by the connection
// coming back at 240 ms (before, a dial counted once, it dialed at once);
// at 600 ms it dials.
func TestReturningConnectionPreferredWithinTwoDials(t *testing.T) {
	const dial = 200 * time.Millisecond
	for _, tc := range []struct {
		use    time.Duration
		dialed int64
	}{
		{use: 3 * dial / 2, dialed: 0},
		{use: 3 * dial, dialed: 1},
	} {
		t.Run(tc.use.String(), func(t *testing.T) {
			p, held := holdOneWith(t, tc.use, dial)
			before := p.counters.newConns.Load()
			done := acquireAsync(p)
			time.Sleep(dial * 6 / 5)
			held.Release()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got := p.counters.newConns.Load() - before; got != tc.dialed {
				t.Fatalf("turn %v away, a dial %v: %d new connections, want %d", tc.use, dial, got, tc.dialed)
			}
		})
	}
}

// A caller waiting for a connection to come back dials as soon as that
// connection is closed instead (as a failed probe closes it), not when
// its patience runs out: nothing wakes it then, so it looks again every
// waitRecheck. The estimates put its turn 150 ms away and a dial at 1 s
// (patience 2 s); the one borrowed connection is destroyed 100 ms in.
func TestWaiterDialsWhenTheConnectionItWaitsForCloses(t *testing.T) {
	const dial = time.Second
	p, held := holdOneWith(t, 150*time.Millisecond, dial)
	start := time.Now()
	done := acquireAsync(p)
	time.Sleep(100 * time.Millisecond)
	held.Destroy()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > dial {
		t.Fatalf("served after %v: the caller slept toward its patience (%v) after the connection it waited for closed", took, returnPatience*dial)
	}
}

// holdOneWith opens a pool, borrows its one connection and sets the
// estimates returnBeatsDial reads: a borrower keeps its connection use, a
// dial takes dial, measured just now.
func holdOneWith(t *testing.T, use, dial time.Duration) (*Pool[*fakeConn], *Conn[*fakeConn]) {
	t.Helper()
	p, _ := openFake(t, Config{MaxConns: 4})
	held, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p.policy.useNanos.Store(int64(use))
	p.policy.dialNanos.Store(int64(dial))
	p.policy.dialAt.Store(nanotime())
	return p, held
}

// acquireAsync acquires from p in the background (10 s at most),
// releases at once, and sends the error, nil when served.
func acquireAsync(p *Pool[*fakeConn]) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := p.Acquire(ctx)
		if err == nil {
			c.Release()
		}
		done <- err
	}()
	return done
}
