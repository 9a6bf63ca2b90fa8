package pgxconn

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
)

// Budget slots (runpool.Config.BudgetSlots). Each connection holds one of
// n session advisory locks in the two-int key space (classid, objid) =
// (namespace, 0..n-1), taken in the batch that sets the session up, so a
// slot costs no round trip of its own. The namespace is a 32-bit FNV-1a
// hash of "runpool:" + the pool's name + "/" + the role + "@" + the
// database: every instance of a service shares it, and services that
// share a server but not a name or a role do not. The two-int form is
// apart from the single-bigint form PostgreSQL also offers (pg_locks
// tells them apart by objsubid 2 and 1), so an application's own bigint
// advisory locks never collide with the slots.
//
// The server releases a session's locks when the session ends, so the
// slots of a crashed instance free themselves when the server notices its
// sessions are gone (see docs/budget.md for the bound).
//
// pg_advisory_unlock_all() and DISCARD ALL, run by a user on a pooled
// connection, release its slot too. The checkout probe re-takes it
// (slotProbe): the same slot when still free, another when not, and when
// every slot is held the probe fails, so the pool closes the connection.
// Between the statement and the next probe, the service may hold one
// connection more than its budget per such connection.

// slotKey holds the connection's slot (a slot) in pgconn's CustomData.
const slotKey = "runpool.slot"

// slots is what a Session needs to take a slot: the key space and its
// size; the zero value takes none.
type slots struct {
	ns int32 // classid
	n  int   // objid runs over 0..n-1
}

// slotsFor returns the slots of pool's configuration for connections of
// cc: none when slots are off.
func slotsFor(cc *pgx.ConnConfig, pool runpool.Config) slots {
	n := pool.Slots()
	if n <= 0 {
		return slots{}
	}
	name := pool.Name
	if name == "" {
		name = "runpool"
	}
	return slots{ns: SlotNamespace(name, cc.User, cc.Database), n: n}
}

// SlotNamespace is the classid of the budget slots of the service named
// name that connects as user to database.
func SlotNamespace(name, user, database string) int32 {
	h := fnv.New32a()
	h.Write([]byte("runpool:" + name + "/" + user + "@" + database))
	return int32(h.Sum32())
}

// takeQuery returns the statement that takes one free slot and returns
// its number, or no row when every slot is held. The scan starts at a
// random slot, so that dials at the same moment do not all try slot 0
// first; the LIMIT stops it at the first lock taken, and the lock call is
// a filter on the scan's rows, evaluated one row at a time (the test
// TestSlotTakesExactlyOne holds the planner to it).
func (s slots) takeQuery() string {
	start := rand.IntN(s.n)
	return fmt.Sprintf(`SELECT k FROM (SELECT (i + %d) %% %d AS k FROM pg_catalog.generate_series(0, %d) i) s
	WHERE pg_catalog.pg_try_advisory_lock(%d, k) LIMIT 1`, start, s.n, s.n-1, s.ns)
}

// probeQuery returns the statement the checkout probe sends on a
// connection holding slot k: it re-takes k (a no-op when the session
// still holds it; session locks stack, and the session's end releases
// them all), else any free slot, and returns the slot held, NULL for
// none.
func (s slots) probeQuery(k int) string {
	return fmt.Sprintf(`SELECT CASE WHEN pg_catalog.pg_try_advisory_lock(%d, %d) THEN %d ELSE (%s) END`, s.ns, k, k, s.takeQuery())
}

// slot is the slot a connection holds: k, locked n times by its session
// as far as the pool knows (a probe's re-take stacks one more; a user's
// pg_advisory_unlock_all may have released them all meanwhile).
type slot struct {
	s slots
	k int
	n int
}

// readSlot reads the slot number of takeQuery's or probeQuery's result:
// false when no slot was taken.
func readSlot(r *pgconn.Result) (int, bool) {
	if len(r.Rows) != 1 || len(r.Rows[0]) != 1 || r.Rows[0][0] == nil {
		return 0, false
	}
	k, err := strconv.Atoi(string(r.Rows[0][0]))
	return k, err == nil
}

// errSlotLost: the probe found the connection's slot released (by the
// user's pg_advisory_unlock_all or DISCARD ALL), no slot free to take in
// its place, and the instance's pass held: the connection is beyond the
// budget.
var errSlotLost = errors.New("runpool: the connection lost its budget slot (pg_advisory_unlock_all or DISCARD ALL) and none is free")

// slotProbe is the checkout probe of a connection holding a slot: one
// round trip, as the plain probe, that re-takes the slot (probeQuery).
// A connection that lost its slot and finds none free stays when it can
// hold the pass.
func (c *Conn) slotProbe(ctx context.Context, held slot) error {
	results, err := c.Pgx.PgConn().Exec(ctx, held.s.probeQuery(held.k)).ReadAll()
	if err != nil {
		return err
	}
	k, ok := readSlot(results[0])
	if !ok {
		if c.pass == nil || !c.pass.hold(c) {
			return errSlotLost
		}
		delete(c.Pgx.PgConn().CustomData(), slotKey)
		return nil
	}
	if k == held.k {
		held.n++
	} else {
		held = slot{s: held.s, k: k, n: 1}
	}
	c.Pgx.PgConn().CustomData()[slotKey] = held
	return nil
}

// seekSlot is the checkout probe of the connection holding the pass when
// a dial wants it (pass.seekDue): one round trip that takes a free slot,
// if any, and so gives the pass back.
func (c *Conn) seekSlot(ctx context.Context) error {
	s, cd := c.pass.slots, c.Pgx.PgConn().CustomData()
	results, err := c.Pgx.PgConn().Exec(ctx, s.tryQuery(c.pass.belowShare(), markHeld(cd), c.pass.lookDue())).ReadAll()
	if err != nil {
		return err
	}
	try := readTry(results[0])
	if try.ok {
		cd[slotKey] = slot{s: s, k: try.k, n: 1}
	}
	noteMark(cd, try.marked)
	c.pass.sought(c, try)
	return nil
}

// yieldSlot gives c's slot back to the service and has c hold the pass
// instead, in one round trip, when the pass is free; it reports whether
// it did.
func (c *Conn) yieldSlot(ctx context.Context) (bool, error) {
	held, ok := slotOf(c.Pgx)
	if !ok || c.pass == nil || !c.pass.yieldTo(c) {
		return false, nil
	}
	if _, err := c.Pgx.PgConn().Exec(ctx, held.unlockQuery()).ReadAll(); err != nil {
		return false, err // the pool closes c, which gives the pass back
	}
	delete(c.Pgx.PgConn().CustomData(), slotKey)
	return true, nil
}

// slotOf returns the slot conn holds; false when none (slots off).
func slotOf(conn *pgx.Conn) (slot, bool) {
	s, ok := conn.PgConn().CustomData()[slotKey].(slot)
	return s, ok
}

// SlotOf returns the budget slot conn holds, for tests and diagnostics;
// false when it holds none (slots off).
func SlotOf(conn *pgx.Conn) (namespace int32, k int, ok bool) {
	s, ok := slotOf(conn)
	return s.s.ns, s.k, ok
}

// unlockQuery returns the statement that releases the session's locks of
// the slot: as many as the pool counted (held.n), stopping at the first
// unlock that finds none left. After a user's pg_advisory_unlock_all the
// session holds fewer, and the server answers that unlock with a
// WARNING: one, however many the count said.
func (held slot) unlockQuery() string {
	return fmt.Sprintf(`WITH RECURSIVE u(i) AS (SELECT 1 WHERE pg_catalog.pg_advisory_unlock(%[1]d, %[2]d)
	UNION ALL SELECT i + 1 FROM u WHERE CASE WHEN i < %[3]d THEN pg_catalog.pg_advisory_unlock(%[1]d, %[2]d) ELSE false END)
	SELECT count(*) FROM u`, held.s.ns, held.k, held.n)
}
