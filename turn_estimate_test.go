package runpool

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/pgtest"
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
func holdOneWith(t *testing.T, use, dial time.Duration) (*Pool[*pgx.Conn], *Conn[*pgx.Conn]) {
	t.Helper()
	p := newTestPool(t)
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
func acquireAsync(p *Pool[*pgx.Conn]) <-chan error {
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

// newTestPool opens a pool of pgx connections to the shared test server,
// through pgxConnector, closed when the test ends.
func newTestPool(t *testing.T) *Pool[*pgx.Conn] {
	t.Helper()
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	p, err := New(Config{MaxConns: 4}, pgxConnector{url: srv.URLFor(user, "pw", user)}, Hooks[*pgx.Conn]{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// pgxConnector is the least a Connector needs over pgx, for tests of the
// pool's own decisions on real connections (the adapters import this
// package, so its tests cannot use them).
type pgxConnector struct{ url string }

func (c pgxConnector) Connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, c.url)
}

func (pgxConnector) Ping(ctx context.Context, c *pgx.Conn) error { return c.Ping(ctx) }

func (pgxConnector) Reusable(c *pgx.Conn) bool {
	return !c.IsClosed() && !c.PgConn().IsBusy() && c.PgConn().TxStatus() == 'I'
}

func (pgxConnector) Cancel(ctx context.Context, c *pgx.Conn) error {
	return c.PgConn().CancelRequest(ctx)
}

func (pgxConnector) Close(c *pgx.Conn, dead bool) {
	if dead {
		c.PgConn().Conn().Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Close(ctx)
}
