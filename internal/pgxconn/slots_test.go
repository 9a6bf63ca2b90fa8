package pgxconn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// slotConfig is a pool's configuration with n budget slots in a key
// space of the test's own: the budget is n and one pass per instance.
func slotConfig(t *testing.T, n int) runpool.Config {
	t.Helper()
	pool := runpool.Config{Name: t.Name(), MaxInstances: 1, BudgetSlots: runpool.BudgetSlotsAdvisory}
	pool.Budget = n + pool.Passes()
	if err := pool.Validate(); err != nil {
		t.Fatal(err)
	}
	if pool.Slots() != n {
		t.Fatalf("%d slots, want %d", pool.Slots(), n)
	}
	return pool
}

// slotSession sets up a Session with n budget slots in a key space of
// the test's own.
func slotSession(t *testing.T, srv *pgtest.Server, n int) (*Session, int32) {
	t.Helper()
	cc, err := pgx.ParseConfig(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	return Setup(cc, slotConfig(t, n)), SlotNamespace(t.Name(), cc.User, cc.Database)
}

// dialSlot opens a connection and sets its session up, slot included;
// the connection is closed at the test's end.
func dialSlot(t *testing.T, s *Session) (*pgx.Conn, error) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, s.ConnConfig().Copy())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AfterConnect(ctx, conn); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}

// slotLocks counts the advisory locks granted in key space ns, for the
// session pid (0: every session).
func slotLocks(t *testing.T, srv *pgtest.Server, ns int32, pid uint32) int64 {
	t.Helper()
	return srv.QueryInt(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2
		AND classid::int8 = $1 AND granted AND ($2 = 0 OR pid = $2)`, int64(uint32(ns)), int64(pid))
}

// Each connection's setup takes exactly one slot, never a second one the
// planner might evaluate past the LIMIT, and distinct connections take
// distinct slots; with every slot held the setup takes none (the
// connector's pass covers that connection: pass_test.go), and a
// session's end frees its slot.
func TestSlotTakesExactlyOne(t *testing.T) {
	srv := pgtest.Shared(t)
	const n = 6
	s, ns := slotSession(t, srv, n)
	seen := map[int]bool{}
	var conns []*pgx.Conn
	for i := range n {
		conn, err := dialSlot(t, s)
		if err != nil {
			t.Fatalf("connection %d of %d slots: %v", i+1, n, err)
		}
		_, k, ok := SlotOf(conn)
		if !ok || k < 0 || k >= n || seen[k] {
			t.Fatalf("connection %d holds slot %d (ok %v), seen %v", i+1, k, ok, seen)
		}
		seen[k] = true
		if got := slotLocks(t, srv, ns, conn.PgConn().PID()); got != 1 {
			t.Fatalf("connection %d holds %d slot locks, want 1", i+1, got)
		}
		conns = append(conns, conn)
	}
	if got := slotLocks(t, srv, ns, 0); got != n {
		t.Fatalf("%d slot locks held, want %d", got, n)
	}
	extra, err := dialSlot(t, s)
	if err != nil {
		t.Fatalf("dial with every slot held: %v", err)
	}
	if _, k, ok := SlotOf(extra); ok {
		t.Fatalf("the dial with every slot held took slot %d", k)
	}
	if got := slotLocks(t, srv, ns, 0); got != n {
		t.Fatalf("after the dial without a slot %d slot locks are held, want %d", got, n)
	}
	extra.Close(context.Background())
	_, freed, _ := SlotOf(conns[2])
	conns[2].Close(context.Background())
	// Close sends Terminate and returns; the backend ends, and frees its
	// slot, a moment later.
	for end := time.Now().Add(10 * time.Second); slotLocks(t, srv, ns, 0) == n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the closed session's slot still held 10 s after its close")
		}
	}
	conn, err := dialSlot(t, s)
	if err != nil {
		t.Fatalf("dial after a session ended: %v", err)
	}
	if _, k, _ := SlotOf(conn); k != freed {
		t.Fatalf("the new connection took slot %d, want the freed %d", k, freed)
	}
}

// A user's pg_advisory_unlock_all() or DISCARD ALL releases the slot; the
// checkout probe takes it back, or another free one; when none is free
// the connection takes the instance's pass if it can, and the probe
// fails when it cannot, so the pool closes the connection that is
// beyond the budget.
func TestSlotSurvivesUnlockAll(t *testing.T) {
	srv := pgtest.Shared(t)
	ctx := context.Background()
	const n = 3
	s, ns := slotSession(t, srv, n)
	a, err := dialSlot(t, s)
	if err != nil {
		t.Fatal(err)
	}
	_, k, _ := SlotOf(a)
	for _, stmt := range []string{"SELECT pg_advisory_unlock_all()", "DISCARD ALL"} {
		if _, err := a.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
		if got := slotLocks(t, srv, ns, a.PgConn().PID()); got != 0 {
			t.Fatalf("after %s the session holds %d slot locks", stmt, got)
		}
		if err := (&Conn{Pgx: a}).slotProbe(ctx, slot{s: s.slots, k: k}); err != nil {
			t.Fatalf("probe after %s: %v", stmt, err)
		}
		if _, k2, _ := SlotOf(a); k2 != k || slotLocks(t, srv, ns, a.PgConn().PID()) != 1 {
			t.Fatalf("after %s and a probe: slot %d (want %d), %d locks", stmt, k2, k, slotLocks(t, srv, ns, a.PgConn().PID()))
		}
	}
	// Lost to another connection while all others are held: none to take.
	if _, err := a.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := dialSlot(t, s); err != nil {
			t.Fatal(err)
		}
	}
	held, _ := slotOf(a)
	taken := newPass(s.slots)
	if ok, _ := taken.take(ctx); !ok {
		t.Fatal("a fresh pass is not free")
	}
	if err := (&Conn{Pgx: a, pass: taken}).slotProbe(ctx, held); !errors.Is(err, errSlotLost) {
		t.Fatalf("probe with the slot lost, none free and the pass held by a dial: %v, want errSlotLost", err)
	}
	c := &Conn{Pgx: a, pass: newPass(s.slots)}
	if err := c.slotProbe(ctx, held); err != nil || !c.pass.held(c) {
		t.Fatalf("probe with the slot lost, none free and the pass free: %v, pass held %v", err, c.pass.held(c))
	}
	if _, _, ok := SlotOf(a); ok {
		t.Fatal("the connection holding the pass still records a slot")
	}
	if got := slotLocks(t, srv, ns, 0); got != n {
		t.Fatalf("%d slot locks held, want %d", got, n)
	}
}
