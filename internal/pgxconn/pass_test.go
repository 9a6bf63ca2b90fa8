package pgxconn

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// passConnector returns a Connector with n budget slots, connecting as a
// role of the test's own, whose backends the test counts.
func passConnector(t *testing.T, srv *pgtest.Server, n int) (*Connector[*Conn], string) {
	t.Helper()
	user := srv.CreateRole(t, -1)
	cc, err := pgx.ParseConfig(srv.URLFor(user, "pw", user))
	if err != nil {
		t.Fatal(err)
	}
	k, err := New(context.Background(), Options[*Conn]{ConnConfig: cc, Pool: slotConfig(t, n),
		Open: openConn})
	if err != nil {
		t.Fatal(err)
	}
	return k, user
}

// openConn is the tests' Options.Open: a plain pgx connection.
func openConn(ctx context.Context, cc *pgx.ConnConfig) (*Conn, error) {
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	return &Conn{Pgx: c}, nil
}

// poolDial dials through k as the pool does: Connect, then DialSettled
// once the pool's own use of the connection (none here) is done.
func poolDial(ctx context.Context, k *Connector[*Conn]) (*Conn, error) {
	c, err := k.Connect(ctx)
	if err == nil {
		k.DialSettled(c)
	}
	return c, err
}

// dial opens a connection through k, closed at the test's end.
func dial(t *testing.T, k *Connector[*Conn]) *Conn {
	t.Helper()
	c, err := poolDial(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close(c, false) })
	return c
}

// dialed is how a dial started in the background ended.
type dialed struct {
	c   *Conn
	err error
}

// dialInBackground starts a dial through k, settled as the pool settles
// its dials (poolDial) when settle, and returns where it ends.
func dialInBackground(k *Connector[*Conn], settle bool) <-chan dialed {
	done := make(chan dialed, 1)
	go func() {
		var d dialed
		if settle {
			d.c, d.err = poolDial(context.Background(), k)
		} else {
			d.c, d.err = k.Connect(context.Background())
		}
		done <- d
	}()
	return done
}

// stillDialing fails t when the dial done ends within 50 ms; what says
// before what it should not have.
func stillDialing(t *testing.T, done <-chan dialed, what string) {
	t.Helper()
	select {
	case d := <-done:
		t.Fatalf("the dial ended (%v) %s", d.err, what)
	case <-time.After(50 * time.Millisecond):
	}
}

// grow dials while the connection holding the pass, which has not tried
// for a slot, is out: the dial waits until that connection's checkout
// probe takes a slot and so gives the pass back,
// then opens. It returns the dial's connection.
func grow(t *testing.T, k *Connector[*Conn], holder *Conn) *Conn {
	t.Helper()
	done := dialInBackground(k, true)
	for !k.WantsProbe(holder, false) {
		select {
		case d := <-done:
			t.Fatalf("the dial ended (%v) before the holder's probe", d.err)
		case <-time.After(time.Millisecond):
		}
	}
	return probeFreesPass(t, k, holder, done)
}

// probeFreesPass probes holder, which holds the pass with a slot free,
// checks that the probe took the slot and gave the pass back, and returns
// the connection of the dial done that waited for the pass, closed at the
// test's end.
func probeFreesPass(t *testing.T, k *Connector[*Conn], holder *Conn, done <-chan dialed) *Conn {
	t.Helper()
	if err := k.Ping(context.Background(), holder); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := SlotOf(holder.Pgx); !ok || k.pass.held(holder) {
		t.Fatalf("the holder's probe with a slot free: slot held %v, pass held %v; want the slot only", ok, k.pass.held(holder))
	}
	d := <-done
	if d.err != nil {
		t.Fatalf("the dial that waited for the pass: %v", d.err)
	}
	t.Cleanup(func() { k.Close(d.c, false) })
	return d.c
}

// An instance's only connection holds the pass and no slot, and its
// first checkout tries for one (it may be the first of a burst). A second
// dial waits for it to take a slot at its next checkout, then opens; a dial
// that finds every slot held keeps its connection, which holds the pass,
// and the next dial then fails at once as a full server would, without
// opening a backend. The connection holding the pass tries for a slot
// again at a checkout once a dial was refused, and takes one when one is
// free.
func TestPassCoversTheDialWithoutASlot(t *testing.T) {
	srv := pgtest.Shared(t)
	ctx := context.Background()
	const n = 2
	k, user := passConnector(t, srv, n)
	first := dial(t, k)
	if _, _, ok := SlotOf(first.Pgx); ok || !k.pass.held(first) || k.SlotsHeld() != 0 {
		t.Fatalf("the only connection: slot held %v, pass held %v, SlotsHeld %d; want the pass only", ok, k.pass.held(first), k.SlotsHeld())
	}
	if !k.WantsProbe(first, false) {
		t.Fatal("the only connection wants no probe at its first checkout")
	}
	if k.WantsProbe(first, false) {
		t.Fatal("the holder wants a probe again before any dial wanted the pass")
	}
	grow(t, k, first)
	holder := dial(t, k)
	if _, _, ok := SlotOf(holder.Pgx); ok || !k.pass.held(holder) || k.SlotsHeld() != n {
		t.Fatalf("the dial past the slots: slot held %v, pass held %v, SlotsHeld %d; want the pass only, %d slots held",
			ok, k.pass.held(holder), k.SlotsHeld(), n)
	}
	refuse := func(backends int) {
		t.Helper()
		began := time.Now()
		_, err := poolDial(ctx, k)
		var noSlot *runpool.NoSlotError
		if !errors.As(err, &noSlot) || !errors.Is(err, runpool.ErrNoFreeSlot) || noSlot.SQLState() != "53300" {
			t.Fatalf("dial with the pass held, no slot free: %v, want a *runpool.NoSlotError (53300)", err)
		}
		if waited := time.Since(began); waited >= passWait {
			t.Fatalf("the refusal took %v: it waited for the pass", waited)
		}
		if b := srv.Backends(t, user); b != backends {
			t.Fatalf("%d backends after the refused dial, want %d", b, backends)
		}
	}
	refuse(n + 1)
	time.Sleep(seekEvery)
	if !k.WantsProbe(holder, false) {
		t.Fatal("the holder wants no probe after a refused dial")
	}
	if k.WantsProbe(holder, false) {
		t.Fatal("the holder wants a second probe without another refused dial")
	}
	if err := k.Ping(ctx, holder); err != nil || !k.pass.held(holder) {
		t.Fatalf("probe with no slot free: %v, pass held %v; want nil and the pass kept", err, k.pass.held(holder))
	}

	k.Close(first, false)
	for srv.Backends(t, user) > n { // the slot frees as the backend ends
		time.Sleep(2 * time.Millisecond)
	}
	refuse(n)
	time.Sleep(seekEvery)
	if !k.WantsProbe(holder, false) {
		t.Fatal("the holder wants no probe after a second refused dial")
	}
	if err := k.Ping(ctx, holder); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := SlotOf(holder.Pgx); !ok || k.pass.held(holder) {
		t.Fatalf("probe with a slot free: slot held %v, pass held %v; want the slot only", ok, k.pass.held(holder))
	}
	c, err := poolDial(ctx, k)
	if err != nil {
		t.Fatalf("dial once the pass is free: %v", err)
	}
	defer k.Close(c, false)
	if !k.pass.held(c) {
		t.Fatal("the new dial, with no slot free, does not hold the pass")
	}
}

// Dials with budget slots run one at a time, so that the instance never
// has more than one backend without a slot: however many dial at once,
// the role's backends never exceed the slots and the pass, and every
// dial past them fails as on a full server. Closing the connection that
// holds the pass lets the next dial in.
func TestPassDialsOneAtATime(t *testing.T) {
	srv := pgtest.Shared(t)
	ctx := context.Background()
	const n, dials = 3, 10
	k, user := passConnector(t, srv, n)
	first := dial(t, k)
	grow(t, k, first) // two slots held, the pass free
	done := make(chan struct{})
	peak := make(chan int)
	go func() {
		most := 0
		for {
			most = max(most, srv.Backends(t, user))
			select {
			case <-done:
				peak <- most
				return
			default:
			}
		}
	}()
	var mu sync.Mutex
	var opened []*Conn
	var refused int
	var wg sync.WaitGroup
	for range dials {
		wg.Go(func() {
			c, err := poolDial(ctx, k)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				opened = append(opened, c)
			case errors.Is(err, runpool.ErrNoFreeSlot):
				refused++
			default:
				t.Errorf("dial: %v", err)
			}
		})
	}
	wg.Wait()
	close(done)
	most := <-peak
	t.Logf("%d dials at once, %d slots (2 held): %d opened, %d refused, peak %d backends", dials, n, len(opened), refused, most)
	if len(opened) != 2 || refused != dials-2 {
		t.Fatalf("%d opened and %d refused, want 2 (the last slot, the pass) and %d", len(opened), refused, dials-2)
	}
	if most > n+1 {
		t.Fatalf("peak %d backends, over the %d slots and the pass", most, n)
	}
	var holder *Conn
	for _, c := range opened {
		if k.pass.held(c) {
			holder = c
		} else {
			defer k.Close(c, false)
		}
	}
	if holder == nil {
		t.Fatal("no connection holds the pass")
	}
	k.Close(holder, false)
	c, err := poolDial(ctx, k)
	if err != nil {
		t.Fatalf("dial after the holder closed: %v", err)
	}
	k.Close(c, false)
}

// An idle connection gives its slot back and holds the free pass
// instead, however many times its probes re-took the slot; its next
// checkout asks for a probe, with no caller waiting (a quiet instance's
// next request may open a burst), and the probe takes a slot again.
func TestYieldSlot(t *testing.T) {
	srv := pgtest.Shared(t)
	ctx := context.Background()
	const n = 2
	k, user := passConnector(t, srv, n)
	c := dial(t, k)
	held := func() int64 { return slotLocks(t, srv, k.pass.slots.ns, 0) }
	if err := k.Ping(ctx, c); err != nil || held() != 1 || !k.PassFree() { // a probe tries for a slot
		t.Fatalf("first probe: %v, %d slots held, pass free %v; want a slot and the pass free", err, held(), k.PassFree())
	}
	for range 2 { // each probe stacks one more lock of the slot
		if err := k.Ping(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := slotOf(c.Pgx); s.n != 3 {
		t.Fatalf("%d locks of the slot counted, want 3", s.n)
	}
	yielded, err := k.YieldSlot(ctx, c)
	if err != nil || !yielded {
		t.Fatalf("yield: %v, %v", yielded, err)
	}
	if held() != 0 || !k.pass.held(c) || k.SlotsHeld() != 0 {
		t.Fatalf("after the yield: %d slots held, pass held %v, SlotsHeld %d; want the pass only", held(), k.pass.held(c), k.SlotsHeld())
	}
	if yielded, _ := k.YieldSlot(ctx, c); yielded {
		t.Fatal("a second yield, with the pass held")
	}
	if !k.WantsProbe(c, false) {
		t.Fatal("the checkout after the yield, no caller waiting: no probe asked for")
	}
	if err := k.Ping(ctx, c); err != nil || held() != 1 || !k.PassFree() {
		t.Fatalf("probe after the yield: %v, %d slots held, pass free %v", err, held(), k.PassFree())
	}
	if b := srv.Backends(t, user); b != 1 {
		t.Fatalf("%d backends, want the one", b)
	}
}

// A yield after a user's pg_advisory_unlock_all() releases nothing more,
// however many locks of the slot the pool counted, and draws one WARNING
// from the server at most; a yield with the count right draws none.
func TestYieldSlotAfterUnlockAll(t *testing.T) {
	srv := pgtest.Shared(t)
	ctx := context.Background()
	user := srv.CreateRole(t, -1)
	cc, err := pgx.ParseConfig(srv.URLFor(user, "pw", user))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var warnings int
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if n.Severity == "WARNING" {
			mu.Lock()
			warnings++
			mu.Unlock()
		}
	}
	k, err := New(ctx, Options[*Conn]{ConnConfig: cc, Pool: slotConfig(t, 2),
		Open: openConn})
	if err != nil {
		t.Fatal(err)
	}
	warned := func() int { mu.Lock(); defer mu.Unlock(); return warnings }
	c := dial(t, k)
	for _, unlockAll := range []bool{false, true} {
		for range 5 { // the first takes the slot, the others stack locks of it
			if err := k.Ping(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if unlockAll {
			if _, err := c.Pgx.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
				t.Fatal(err)
			}
		}
		before := warned()
		if yielded, err := k.YieldSlot(ctx, c); err != nil || !yielded {
			t.Fatalf("yield (unlock_all %v): %v, %v", unlockAll, yielded, err)
		}
		if held := slotLocks(t, srv, k.pass.slots.ns, 0); held != 0 {
			t.Fatalf("after the yield (unlock_all %v): %d locks held", unlockAll, held)
		}
		want := 0
		if unlockAll {
			want = 1
		}
		if got := warned() - before; got != want {
			t.Fatalf("the yield (unlock_all %v) drew %d warnings, want %d", unlockAll, got, want)
		}
	}
}

// A holder's finding that every slot was held goes out of date: older
// than passWait (an instance frozen since, as a platform freezes an idle
// one), it no longer fails a dial at once; the dial waits for the
// holder's next try, and proceeds when that try takes a slot.
func TestPassFullFindingGoesStale(t *testing.T) {
	srv := pgtest.Shared(t)
	const n = 1
	k, user := passConnector(t, srv, n)
	first := dial(t, k)
	holder := grow(t, k, first) // first takes the slot; the dial past it holds the pass
	if full, _ := k.DialSettled(holder); !full {
		t.Fatal("the dial past the slots did not find them full")
	}
	k.pass.mu.Lock()
	k.pass.tried = k.pass.tried.Add(-2 * passWait) // the instance froze since
	k.pass.mu.Unlock()

	k.Close(first, false)
	for srv.Backends(t, user) > n { // the slot frees as the backend ends
		time.Sleep(2 * time.Millisecond)
	}
	grow(t, k, holder) // the dial waits for the holder's try rather than fail
}

// After a freeze the dial on the pass finds every slot held by the
// orphans of the connections the thaw gave up, and the pool ends them
// through it before it serves: until the pool settles that dial's
// finding (DialSettled), a dial waiting for the pass waits; ending the
// orphans puts the finding out of date, so the dial does not count as
// refused, and the waiting dial waits for the holder's next try, which
// takes the slot an orphan freed.
func TestPassFullFindingEndsWithOrphans(t *testing.T) {
	srv := pgtest.Shared(t)
	ctx := context.Background()
	const n = 1
	k, user := passConnector(t, srv, n)
	first := dial(t, k)
	if err := k.Ping(ctx, first); err != nil { // takes the slot, frees the pass
		t.Fatal(err)
	}
	holder, err := k.Connect(ctx) // not yet settled
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close(holder, false) })
	done := dialInBackground(k, true)
	stillDialing(t, done, "before the holder's dial was settled")

	orphan, ok := k.Session(first) // first's session, given up as dead
	if !ok {
		t.Fatal("no session recorded for the first connection")
	}
	if ended, err := k.EndOrphans(ctx, holder, []runpool.Orphan{orphan}); err != nil || ended != 1 {
		t.Fatalf("EndOrphans: %d, %v; want 1", ended, err)
	}
	if full, _ := k.DialSettled(holder); full {
		t.Fatal("the holder's dial counts as refused after the orphan holding the slot ended")
	}
	stillDialing(t, done, "before the holder tried again")
	if !k.WantsProbe(holder, false) {
		t.Fatal("the holder wants no probe after the orphan ended")
	}
	for srv.Backends(t, user) > n { // the slot frees as the backend ends
		time.Sleep(2 * time.Millisecond)
	}
	probeFreesPass(t, k, holder, done)
}

// A dial that finds the holder's probe trying for a slot waits for that
// try's outcome, whatever the holder's last one found: after a freeze
// the holder's probe is under way on a connection that may be dead, and
// when it fails the holder gives the pass up, to the waiting dial,
// which reports how long it waited (the pool keeps that out of the
// dial's time).
func TestPassDialWaitsForTheHoldersTry(t *testing.T) {
	srv := pgtest.Shared(t)
	const n = 1
	k, _ := passConnector(t, srv, n)
	first := dial(t, k)
	holder := grow(t, k, first)
	if full, _ := k.DialSettled(holder); !full {
		t.Fatal("the dial past the slots did not find them full")
	}
	time.Sleep(seekEvery)
	if !k.pass.seeking(holder) { // the holder's probe begins its try
		t.Fatal("the holder's probe would not try for a slot")
	}
	done := dialInBackground(k, false)
	stillDialing(t, done, "while the holder's try was under way")
	k.Close(holder, true) // its probe failed: the pool destroys it
	d := <-done
	if d.err != nil {
		t.Fatalf("the dial after the holder gave the pass up: %v", d.err)
	}
	defer k.Close(d.c, false)
	if _, waited := k.DialSettled(d.c); waited < 50*time.Millisecond {
		t.Fatalf("the dial reports %v waited for the pass, want at least the 50 ms it waited", waited)
	}
}
