package runpool_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// parkingConnector is a plain pgx connector whose callers park
// connections (its Parks method), as sqladapter's shells do. inUse catches
// a connection handed to two holders at once.
type parkingConnector struct {
	url   string
	inUse sync.Map // *pgx.Conn -> struct{}
}

func (pc *parkingConnector) Parks() bool { return true }

func (pc *parkingConnector) Connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, pc.url)
}

func (pc *parkingConnector) Ping(ctx context.Context, c *pgx.Conn) error { return c.Ping(ctx) }

func (pc *parkingConnector) Reusable(c *pgx.Conn) bool {
	return !c.IsClosed() && !c.PgConn().IsBusy() && c.PgConn().TxStatus() == 'I'
}

func (pc *parkingConnector) Cancel(ctx context.Context, c *pgx.Conn) error {
	return c.PgConn().CancelRequest(ctx)
}

func (pc *parkingConnector) Close(c *pgx.Conn, dead bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// openParking opens a raw runpool pool on a fresh role through
// parkingConnector, shut down when the test ends.
func openParking(t *testing.T, cfg runpool.Config) (*runpool.Pool[*pgx.Conn], *parkingConnector, *pgtest.Server, string) {
	t.Helper()
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	pc := &parkingConnector{url: srv.URLFor(user, "pw", user)}
	p, err := runpool.New(cfg, pc, runpool.Hooks[*pgx.Conn]{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, pc, srv, user
}

// backendPID runs a query on c: the connection works.
func backendPID(t *testing.T, ctx context.Context, c *pgx.Conn) uint32 {
	t.Helper()
	var pid uint32
	if err := c.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestParkedConnectionIsUnparked: a connection parked and unparked at once
// is the same one, taken back without a checkout from the pool; it counts
// as idle while parked and as a checkout when unparked. (No maintainer
// tick: it takes parked connections back.)
func TestParkedConnectionIsUnparked(t *testing.T) {
	p, _, _, _ := openParking(t, runpool.Config{MaxConns: 2, MaintainInterval: time.Hour})
	ctx := ctxT(t, 10*time.Second)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, ctx, c.Value())
	for i := range 100 {
		if !c.Park() {
			t.Fatalf("Park %d: not parked", i)
		}
		if s := p.Stat(); s.IdleConns() != 1 || s.AcquiredConns() != 0 {
			t.Fatalf("parked: idle %d acquired %d, want 1 and 0", s.IdleConns(), s.AcquiredConns())
		}
		if !c.Unpark(ctx) {
			t.Fatalf("Unpark %d: not unparked", i)
		}
	}
	if got := backendPID(t, ctx, c.Value()); got != pid {
		t.Errorf("backend %d after unparking, want %d", got, pid)
	}
	s := p.Stat()
	if s.AcquireCount() != 101 || s.NewConnsCount() != 1 || s.AcquiredConns() != 1 {
		t.Errorf("acquires %d (want 101), dials %d (want 1), acquired %d (want 1)",
			s.AcquireCount(), s.NewConnsCount(), s.AcquiredConns())
	}
	c.Release()
}

// TestParkedConnectionServesAWaitingCaller: with MaxConns 1 and the only
// connection parked, a caller of Acquire gets that connection at once
// instead of waiting for a slot (or for the maintainer); the parker's
// Unpark then reports false.
func TestParkedConnectionServesAWaitingCaller(t *testing.T) {
	p, _, _, _ := openParking(t, runpool.Config{MaxConns: 1, MaintainInterval: time.Hour})
	ctx := ctxT(t, 10*time.Second)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, ctx, c.Value())
	if !c.Park() {
		t.Fatal("not parked")
	}
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	other, err := p.Acquire(actx)
	if err != nil {
		t.Fatalf("Acquire with the only connection parked: %v", err)
	}
	if got := backendPID(t, ctx, other.Value()); got != pid {
		t.Errorf("got backend %d, want the parked one (%d)", got, pid)
	}
	if c.Unpark(ctx) {
		t.Fatal("Unpark took back a connection another caller holds")
	}
	c.Release() // harmless after a failed Unpark
	// While a caller waits, Park returns the connection to it instead.
	got := acquireInBackground(actx, p.Acquire)
	time.Sleep(200 * time.Millisecond) // it waits for the slot other holds
	if other.Park() {
		t.Error("Park kept the connection while a caller waited for it")
	}
	if err := <-got; err != nil {
		t.Errorf("the waiting caller: %v", err)
	}
}

// TestUnparkChecksLikeACheckout: a connection parked for longer than
// ProbeAfterIdle is not handed back by Unpark but left to a checkout's
// probe; its backend was ended meanwhile, so the probe fails, and the
// caller's Acquire gets a working connection.
func TestUnparkChecksLikeACheckout(t *testing.T) {
	p, _, srv, user := openParking(t, runpool.Config{MaxConns: 2, ProbeAfterIdle: 20 * time.Millisecond})
	ctx := ctxT(t, 10*time.Second)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	backendPID(t, ctx, c.Value())
	if !c.Park() {
		t.Fatal("not parked")
	}
	if n := srv.TerminateBackends(t, user); n != 1 {
		t.Fatalf("terminated %d backends, want 1", n)
	}
	time.Sleep(50 * time.Millisecond)
	if c.Unpark(ctx) {
		t.Fatal("Unpark handed back a connection parked past ProbeAfterIdle")
	}
	c2, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Release()
	backendPID(t, ctx, c2.Value())
	if s := p.Stat(); s.ProbeFailureCount() != 1 || s.NewConnsCount() != 2 {
		t.Errorf("failed probes %d (want 1), dials %d (want 2)", s.ProbeFailureCount(), s.NewConnsCount())
	}
}

// TestConnRefDead: a parker whose Unpark failed learns from Conn.Ref
// whether the pool closed its connection as dead (a failed probe here),
// not merely took it back for another caller.
func TestConnRefDead(t *testing.T) {
	p, _, srv, user := openParking(t, runpool.Config{MaxConns: 1, ProbeAfterIdle: 20 * time.Millisecond, MaintainInterval: time.Hour})
	ctx := ctxT(t, 10*time.Second)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Park() {
		t.Fatal("not parked")
	}
	ref := c.Ref()
	other, err := p.Acquire(ctx) // takes the parked connection
	if err != nil {
		t.Fatal(err)
	}
	if c.Unpark(ctx) {
		t.Fatal("Unpark took back a connection another caller holds")
	}
	if ref.Dead() {
		t.Error("a connection taken back for another caller is reported dead")
	}
	backendPID(t, ctx, other.Value())
	if !other.Park() {
		t.Fatal("not parked")
	}
	ref = other.Ref()
	if n := srv.TerminateBackends(t, user); n != 1 {
		t.Fatalf("terminated %d backends, want 1", n)
	}
	time.Sleep(50 * time.Millisecond) // past ProbeAfterIdle: Unpark leaves it to a probe
	if other.Unpark(ctx) {
		t.Fatal("Unpark handed back a connection parked past ProbeAfterIdle")
	}
	if ref.Dead() {
		t.Error("reported dead before anything looked at it")
	}
	c2, err := p.Acquire(ctx) // probes it, fails, dials
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Release()
	if !ref.Dead() {
		t.Error("a connection whose probe failed is not reported dead")
	}
	if (runpool.ConnRef[*pgx.Conn]{}).Dead() {
		t.Error("the zero ConnRef is dead")
	}
}

// TestMaintainerTakesParkedConnectionsBack: at its tick the maintainer
// takes parked connections back, so idle expiry closes them like any
// other idle connection. The close completes after the count of idle
// closes moves (puddle closes in the background, and the connection
// holds its slot until then), so the test waits for it to leave.
func TestMaintainerTakesParkedConnectionsBack(t *testing.T) {
	p, _, _, _ := openParking(t, runpool.Config{MaxConns: 2, MaintainInterval: 20 * time.Millisecond, MaxConnIdleTime: 50 * time.Millisecond})
	ctx := ctxT(t, 10*time.Second)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Park() {
		t.Fatal("not parked")
	}
	waitFor(t, 2*time.Second, "the parked connection closed for idleness", func() bool {
		return p.Stat().MaxIdleDestroyCount() == 1
	})
	if c.Unpark(ctx) {
		t.Fatal("Unpark took back a connection the maintainer closed")
	}
	waitFor(t, 2*time.Second, "no connection left", func() bool { return p.Stat().TotalConns() == 0 })
}

// TestDrainClosesParkedConnections: Shutdown closes parked connections
// at once, as idle ones, without waiting for their parkers; a Park during
// the drain closes the connection.
func TestDrainClosesParkedConnections(t *testing.T) {
	p, _, srv, user := openParking(t, runpool.Config{MaxConns: 2})
	ctx := ctxT(t, 10*time.Second)
	held := acquireAll(t, ctx, p.Acquire, 2)
	a, b := held[0], held[1]
	if !a.Park() {
		t.Fatal("not parked")
	}
	done := make(chan runpool.DrainReport, 1)
	go func() {
		rep, _ := p.Shutdown(ctx)
		done <- rep
	}()
	waitFor(t, 2*time.Second, "the parked connection closed", func() bool { return srv.Backends(t, user) == 1 })
	if b.Park() {
		t.Error("Park kept a connection during the drain")
	}
	rep := <-done
	if rep.ClosedIdle != 1 || rep.WaitedFor != 1 || rep.Returned != 1 || rep.Abandoned != 0 {
		t.Errorf("drain report %+v, want 1 closed idle, 1 waited for and returned", rep)
	}
	if a.Unpark(ctx) {
		t.Error("Unpark after the drain")
	}
	// The drain returned with every connection closed; the server ends
	// the sessions a moment after it reads their goodbyes.
	waitFor(t, 2*time.Second, "no backend after the drain", func() bool { return srv.Backends(t, user) == 0 })
}

// TestParkingUnderContention: two parkers and a plain caller share two
// connections; the plain caller's checkouts take parked connections from
// under the parkers, whose Unpark then fails and who acquire again. Every
// caller is served and no connection is ever held by two at once (run
// with -race); the maintainer ticks throughout.
func TestParkingUnderContention(t *testing.T) {
	p, pc, _, _ := openParking(t, runpool.Config{MaxConns: 2, MaintainInterval: 5 * time.Millisecond})
	ctx := ctxT(t, 30*time.Second)
	var served, unparked, taken atomic.Int64
	use := func(c *pgx.Conn) {
		if _, dup := pc.inUse.LoadOrStore(c, struct{}{}); dup {
			t.Error("a connection held by two callers")
		}
		time.Sleep(20 * time.Microsecond)
		pc.inUse.Delete(c)
		served.Add(1)
	}
	const rounds = 500
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held *runpool.Conn[*pgx.Conn]
			for range rounds {
				switch {
				case held != nil && held.Unpark(ctx):
					unparked.Add(1)
				default:
					if held != nil {
						taken.Add(1)
					}
					c, err := p.Acquire(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					held = c
				}
				use(held.Value())
				if !held.Park() {
					held = nil
				}
				time.Sleep(100 * time.Microsecond)
			}
			if held != nil {
				held.Release()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range rounds / 5 {
			c, err := p.Acquire(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			use(c.Value())
			c.Release()
			time.Sleep(500 * time.Microsecond)
		}
	}()
	wg.Wait()
	if want := int64(2*rounds + rounds/5); served.Load() != want {
		t.Errorf("served %d of %d", served.Load(), want)
	}
	if unparked.Load() == 0 || taken.Load() == 0 {
		t.Errorf("unparked %d, taken back %d: want both", unparked.Load(), taken.Load())
	}
	// The maintainer, every 5 ms, holds idle connections for a moment
	// (taking parked ones back, sweeping): wait out such a hold.
	waitFor(t, 2*time.Second, "no connection acquired once every caller released", func() bool { return p.Stat().AcquiredConns() == 0 })
	s := p.Stat()
	if s.TotalConns() > 2 {
		t.Errorf("after: total %d, want at most MaxConns 2", s.TotalConns())
	}
	t.Logf("served %d, unparked %d, taken back %d, dials %d", served.Load(), unparked.Load(), taken.Load(), s.NewConnsCount())
}
