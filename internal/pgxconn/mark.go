package pgxconn

import (
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The want mark (runpool's slotsevents.go says what the pool makes of
// it). A refused dial tells an instance only that every slot is held,
// not whether another instance waits below its fair share; the mark
// tells it. The connection holding an instance's pass holds a shared
// session advisory lock on (namespace, markKey) while its last try for a
// slot found none free and the instance then held fewer connections than
// its fair share, with callers waiting (pass.below). Every try that finds
// no slot free also reads, in the same statement, whether another
// session holds the mark (pg_locks); so an instance above its share
// gives back while, and only while, another waits below it.
//
// The holder's next try takes the mark off when it gets a slot or the
// instance no longer waits below its share, and the session's end takes
// it off too. A user's pg_advisory_unlock_all() or DISCARD ALL on that
// connection takes it off early: the others then give back at their
// leases' end only, until its next try marks again.

// lookEvery bounds how often an instance's tries read whether another
// instance waits: the read (pg_locks) takes every partition of the
// server's lock table, and the connection holding the pass tries every
// seekEvery while callers wait. The others act on what the last read
// found meanwhile.
const lookEvery = 100 * time.Millisecond

// markKey is the mark's objid, apart from the slots' 0..n-1; pg_locks
// shows it as the unsigned 4294967295.
const markKey int32 = -1

// markedKey notes in pgconn's CustomData that the session holds the
// mark.
const markedKey = "runpool.marked"

// tried is what a try for a slot found.
type tried struct {
	k      int
	ok     bool // a slot was taken: k
	looked bool // no slot was free, and the try read whether another session held the mark:
	waits  bool // it did
	marked bool // the session holds the mark after the try
}

// tryQuery returns the statement of a try for a slot: the slot takeQuery
// takes (NULL for none); with none free and look, whether another
// session holds the mark (NULL when not looked); and whether this
// session holds it after the try: it takes the mark when want and no
// slot was free, and lets it go when it held it (marked) and got a slot
// or no longer wants it. The take is in a WITH query, which PostgreSQL
// evaluates once since it calls volatile functions; CASE orders the
// calls that depend on its outcome.
func (s slots) tryQuery(want, marked, look bool) string {
	unlock := fmt.Sprintf(`pg_catalog.pg_advisory_unlock_shared(%d, %d) IS NULL`, s.ns, markKey)
	var mark string
	switch {
	case want && marked:
		mark = `CASE WHEN k IS NULL THEN true ELSE ` + unlock + ` END`
	case want:
		mark = fmt.Sprintf(`CASE WHEN k IS NULL THEN pg_catalog.pg_try_advisory_lock_shared(%d, %d) ELSE false END`, s.ns, markKey)
	case marked:
		mark = unlock
	default:
		mark = `false`
	}
	waits := `NULL::bool`
	if look {
		waits = fmt.Sprintf(`CASE WHEN k IS NULL THEN EXISTS (SELECT FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory'
		AND l.classid = %d AND l.objid = %d AND l.objsubid = 2 AND l.granted AND l.pid <> pg_catalog.pg_backend_pid()) END`,
			uint32(s.ns), 1<<32+int64(markKey))
	}
	return fmt.Sprintf(`WITH t AS (SELECT (%s) AS k) SELECT k, %s, %s FROM t`, s.takeQuery(), waits, mark)
}

// readTry reads tryQuery's result.
func readTry(r *pgconn.Result) (t tried) {
	if len(r.Rows) != 1 || len(r.Rows[0]) != 3 {
		return t
	}
	row := r.Rows[0]
	if row[0] != nil {
		k, err := strconv.Atoi(string(row[0]))
		t.k, t.ok = k, err == nil
	}
	t.looked, t.waits = row[1] != nil, string(row[1]) == "t"
	t.marked = string(row[2]) == "t"
	return t
}

// noteMark records in conn's CustomData whether its session holds the
// mark.
func noteMark(cd map[string]any, marked bool) {
	if marked {
		cd[markedKey] = true
	} else {
		delete(cd, markedKey)
	}
}

// markHeld reports whether the session holds the mark, as far as the
// pool knows.
func markHeld(cd map[string]any) bool { _, ok := cd[markedKey]; return ok }
