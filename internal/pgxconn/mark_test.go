package pgxconn

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// A try that finds every slot held leaves the want mark when asked to,
// and every other session's try that finds none free sees it; the
// marking session's next try takes it off when it no longer wants it or
// gets a slot, and a session's end takes it off too. A try that does not
// look (lookEvery) reads nothing of it.
func TestWantMark(t *testing.T) {
	srv := pgtest.Shared(t)
	s, _ := slotSession(t, srv, 1)
	sl := s.slots
	ctx := context.Background()
	open := func() *pgx.Conn {
		t.Helper()
		c, err := pgx.ConnectConfig(ctx, s.ConnConfig().Copy())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	try := func(c *pgx.Conn, want, marked bool) tried {
		t.Helper()
		results, err := c.PgConn().Exec(ctx, sl.tryQuery(want, marked, true)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return readTry(results[0])
	}
	holder, waiter, other := open(), open(), open()
	if got := try(holder, false, false); !got.ok || got.marked || got.waits {
		t.Fatalf("the first try with the slot free: %+v, want the slot only", got)
	}
	if got := try(waiter, true, false); got.ok || !got.marked || got.waits {
		t.Fatalf("a try that wants the mark, every slot held: %+v, want the mark only", got)
	}
	if got := try(other, false, false); got.ok || got.marked || !got.waits {
		t.Fatalf("another session's try with the mark held: %+v, want waits", got)
	}
	results, err := other.PgConn().Exec(ctx, sl.tryQuery(false, false, false)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := readTry(results[0]); got.ok || got.looked || got.waits {
		t.Fatalf("a try that does not look, with the mark held: %+v, want nothing read", got)
	}
	if got := try(waiter, true, true); got.ok || !got.marked || got.waits {
		t.Fatalf("the marking session's next try, still wanting: %+v, want the mark kept, its own not seen", got)
	}
	if got := try(waiter, false, true); got.ok || got.marked {
		t.Fatalf("the marking session's try that no longer wants it: %+v, want the mark off", got)
	}
	if got := try(other, false, false); got.waits {
		t.Fatal("the mark is seen after it was taken off")
	}
	try(waiter, true, false)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		t.Fatal(err)
	}
	if got := try(waiter, true, true); !got.ok || got.marked {
		t.Fatalf("the marking session's try with the slot free: %+v, want the slot, the mark off", got)
	}
	if got := try(holder, false, false); got.ok || got.waits {
		t.Fatalf("a try with every slot held and no mark: %+v, want nothing", got)
	}
	if got := try(holder, true, false); !got.marked {
		t.Fatal("the mark not taken")
	}
	holder.Close(ctx)
	// The backend ends a moment after the client closes.
	for deadline := time.Now().Add(5 * time.Second); try(other, false, false).waits; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the mark is still seen 5s after its session ended")
		}
	}
}
