package runpool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/puddle/v2"
)

// Budget slots (Config.BudgetSlots). With slots on, the database itself
// enforces the budget, on any server: each server connection of the
// service holds one of the budget's session advisory locks, taken in the
// same round trip as the session's setup (internal/pgxconn), except one
// per instance, its pass.
//
// A session exists before it can take a lock, so a dial is a backend of
// the service before it holds a slot. The pass covers it: an instance
// dials only while it holds its pass (one dial at a time), and a dial
// that finds every slot held keeps the pass as the instance's one
// connection without a slot instead of closing; so does an instance's
// only connection, so that a quiet instance holds no slot. That
// connection tries for a slot at its probes, and at its checkouts while
// callers wait (SlotHolder.WantsProbe; awaitPass holds their dials back
// meanwhile), and gives the pass back when it gets one or closes; a
// quiet instance moves one connection back onto the pass (yieldSlot).
// So an instance's backends never outnumber its slots by more
// than one, and the budget keeps one pass per instance the division
// allows for (MaxInstances with the surge margin) out of the slots: the
// backends of the whole service stay within the budget at every moment.
//
// A dial refused for want of the pass fails with a *NoSlotError, which
// reports SQLSTATE 53300: the pool treats it as it treats a full server
// (back-pressure, and the contention rule of policy.dialOrWait, which
// here keeps an instance above its fair share at half of what it
// borrowed for a while: slotSlack, slotsevents.go). Since the locks, not
// the division, keep the total within the budget, the pool borrows
// beyond its fair share on a lease, as it does where the server's own
// limit is the budget (budget.go).

// Values of Config.BudgetSlots.
const (
	BudgetSlotsOff      = "off"      // the division alone keeps the total within the budget (default)
	BudgetSlotsAdvisory = "advisory" // session advisory locks enforce the budget
)

// ErrNoFreeSlot is wrapped by the error of a dial that found every
// budget slot held (see NoSlotError).
var ErrNoFreeSlot = errors.New("runpool: no free budget slot")

// NoSlotError is a dial's error when every one of the service's budget
// slots was held when this instance last looked, and its pass is taken
// by a connection without a slot: the service uses its whole budget. It
// reports SQLSTATE 53300 (too many connections), so the pool waits it
// out as back-pressure, and errors.Is(err, ErrNoFreeSlot) holds.
type NoSlotError struct {
	Slots int // the number of slots (Config.Slots)
	// Waiting: another instance holding fewer connections than its fair
	// share waited for a slot when this one last looked, so an instance
	// above its share gives back.
	Waiting bool
}

func (e *NoSlotError) Error() string {
	return fmt.Sprintf("runpool: no free budget slot: the service holds all %d (RUNPOOL_BUDGET less RUNPOOL_RESERVE "+
		"and one pass per instance), and this instance's pass", e.Slots)
}

// SQLState is 53300, so that the pool treats the error as a full server.
func (e *NoSlotError) SQLState() string { return "53300" }

// Is makes errors.Is(err, ErrNoFreeSlot) hold.
func (e *NoSlotError) Is(target error) bool { return target == ErrNoFreeSlot }

// SlotsOn reports whether the budget slots are on: BudgetSlots is
// advisory (Validate has checked a budget is set and no pooler is in
// front).
func (c Config) SlotsOn() bool { return c.BudgetSlots == BudgetSlotsAdvisory }

// Slots is the number of budget slots: Budget less Reserve less one pass
// per instance (Passes), 0 when the slots are off.
func (c Config) Slots() int {
	if !c.SlotsOn() {
		return 0
	}
	return c.Budget - c.Reserve - c.Passes()
}

// Passes is the number of connections the slots leave to instances
// without a slot, one each: MaxInstances (1 when unset) with the surge
// margin the division allows for.
func (c Config) Passes() int { return withSurge(c.MaxInstances) }

// SlotHolder is an optional interface for a Connector that takes budget
// slots (Config.BudgetSlots).
type SlotHolder[C any] interface {
	// PassHeld reports, without I/O, that the instance's pass is held by
	// a connection that will try for a slot at its next checkout: a dial
	// now would wait for that checkout, so the caller waits for a
	// connection to come back instead. It notes that a dial wants the
	// pass.
	PassHeld() bool
	// WantsProbe reports, without I/O, that c should be probed at this
	// checkout though the pool would hand it out unprobed: c holds the
	// instance's pass, the instance wants another connection (a dial
	// wanted the pass, or waiting says callers wait), and its probe tries
	// for a slot.
	WantsProbe(c C, waiting bool) bool
	// SlotsHeld is the number of the pool's connections holding a slot.
	SlotsHeld() int
	// PassFree reports, without I/O, that the pass is free: neither a
	// dial nor a connection holds it.
	PassFree() bool
	// DialSettled is called, without I/O, once for each connection the
	// pool dialled, after the pool's own use of it (ending orphaned
	// sessions through it) and before it serves. It reports whether c
	// holds the pass because its try for a slot found every slot held
	// (its dial met a full budget as a refused one would), and how long
	// the dial waited for the pass before it opened anything. Until then
	// a dial waiting for the pass waits for that finding, which ending
	// orphans, whose sessions may hold slots, puts out of date.
	DialSettled(c C) (full bool, passWait time.Duration)
	// WatchShare gives the connector below, which reports whether the
	// instance holds fewer connections than its fair share while callers
	// want more: a try for a slot that finds none free then tells the
	// other instances so (a want mark).
	WatchShare(below func() bool)
	// OthersWait reports, without I/O, that the last try for a slot that
	// found none free saw another instance's want mark.
	OthersWait() bool
	// YieldSlot has c, idle, give its slot back to the service and hold
	// the free pass instead, within ctx; false when the pass was not free
	// or c holds no slot. An error leaves c unusable.
	YieldSlot(ctx context.Context, c C) (bool, error)
}

// noteQuiet follows a connection put back idle with no caller waiting,
// or parked (Conn.Park).
// When the pool is left with that one connection, none checked out and
// the pass free, the connection holds a slot a quiet instance need not
// hold, taken at its first checkout (which tries for one: a fresh
// instance's first request may open a burst) or for a burst now over:
// once it has idled quietAfter, the worker moves it back onto the pass
// (yieldSlot) rather than after ProbeAfterIdle, when the busy instances
// may need it.
//
// It runs at every such release, so it reads no puddle Stat (which
// allocates and walks every connection) and takes no lock of the pool's,
// and re-arms one timer: the count of connections and the pass are
// enough to ask, and yieldSlot checks the rest.
func (p *Pool[C]) noteQuiet() {
	if p.slotter == nil || p.held.Load() != 1 || !p.slotter.PassFree() {
		return
	}
	p.quiet.Reset(p.quietAfter())
}

// quietAfter is how long an instance's only connection idles before it
// gives its slot back (noteQuiet): two round trips of this path, at
// least minQuietAfter. Giving the slot back and taking it again cost the
// instance those two round trips, the give-back's on the maintainer's
// worker and a try for a slot on its next checkout, before the caller's
// query (a quiet instance's next request may open a burst); keeping it
// idle no longer than that costs an instance waiting for it no more. So
// an instance serving requests closer together keeps its slot and pays
// no round trip for it, and on a distant server the gap it keeps the
// slot across grows with the round trip it saves.
func (p *Pool[C]) quietAfter() time.Duration {
	return max(minQuietAfter, 2*p.policy.roundTrip())
}

// minQuietAfter is quietAfter's floor: about a dial's time to a nearby
// server, so that on one a request a few milliseconds after the last
// finds its slot still held.
const minQuietAfter = 20 * time.Millisecond

// askWorker has the maintainer's worker run yieldSlot at once.
func (p *Pool[C]) askWorker() {
	select {
	case p.yieldNow <- struct{}{}:
	default: // asked already
	}
}

// passPatience is how long a caller waits for a connection to come back
// when the pass is held (awaitPass) before it dials, which then waits
// for the pass itself.
const passPatience = time.Second

// awaitPass reports whether a caller's dial is to wait for a connection
// to come back, since the connection holding the pass will try for a
// slot at its next checkout and so free the pass (SlotHolder.PassHeld).
// A dial into the pool has no caller to wait, and one whose caller
// waited its patience out dials.
func (p *Pool[C]) awaitPass(ctx context.Context) bool {
	if p.slotter == nil || ctx.Value(intoPool{}) != nil || ctx.Value(patienceSpent{}) != nil {
		return false
	}
	return p.slotter.PassHeld()
}

// yieldSlot is the maintainer worker's step for the slots: with the pass
// free and no connection checked out, an idle connection that holds a
// slot and that a checkout would probe (idle ProbeAfterIdle or more, of
// the current epoch: policy.endsOrphans) gives its slot back and holds
// the pass instead, in one round trip that is its probe. So an instance
// that went quiet keeps its connection and holds none of the slots the
// busy ones share; its next checkout takes a slot again (pass.go in
// internal/pgxconn). The pool's only connection gives its slot back once
// it has idled quietAfter, when trusted (noteQuiet).
func (p *Pool[C]) yieldSlot(ctx context.Context) {
	st := p.p.Stat()
	if p.slotter == nil || p.isDraining() || st.AcquiredResources() > 0 || p.waiters.Load() > 0 || !p.slotter.PassFree() {
		return
	}
	only, quiet := st.TotalResources() == 1, p.quietAfter()
	var via *puddle.Resource[*entry[C]]
	now := nanotime()
	for _, res := range p.p.AcquireAllIdle() {
		e := res.Value()
		idle := time.Duration(now - e.idleSince)
		if via == nil && (only && idle >= quiet || idle >= p.rules.probeAfter) && p.policy.endsOrphans(idle, &e.stamps, &p.rules, true) {
			via = res
			continue
		}
		res.ReleaseUnused()
	}
	if via == nil {
		return
	}
	ctx, cancel := withRunningTimeout(ctx, p.policy.probeTimeout(p.rules.probeTimeout))
	_, err := p.slotter.YieldSlot(ctx, via.Value().conn)
	cancel()
	if err == nil && p.connector.Reusable(via.Value().conn) {
		p.putIdle(via) // to a caller that came meanwhile, if any
		return
	}
	via.Value().dead.Store(true)
	via.Destroy()
}

// validateSlots checks BudgetSlots against the settings it needs: a
// budget, known before the first dial, that leaves a slot beyond the
// passes, and session-mode connections (a transaction-mode
// pooler hands a session's locks to whichever client runs next, and its
// own client limit is the budget there).
func (c Config) validateSlots() error {
	switch {
	case c.BudgetSlots == "" || c.BudgetSlots == BudgetSlotsOff:
		return nil
	case c.BudgetSlots != BudgetSlotsAdvisory:
		return fieldError("BudgetSlots", c.BudgetSlots, "must be off or advisory")
	case c.Budget <= 0:
		return fieldError("BudgetSlots", c.BudgetSlots, "needs Budget (RUNPOOL_BUDGET): the slots are the budget less the reserve")
	case c.Slots() < 1:
		return fieldError("BudgetSlots", c.BudgetSlots, fmt.Sprintf("leaves no slot: RUNPOOL_BUDGET=%d less RUNPOOL_RESERVE=%d "+
			"less one pass for each of %d instances (RUNPOOL_MAX_INSTANCES=%d with the 10%% surge margin); raise the budget "+
			"or set RUNPOOL_BUDGET_SLOTS=off", c.Budget, c.Reserve, c.Passes(), max(c.MaxInstances, 1)))
	case c.BehindPooler():
		return fieldError("BudgetSlots", c.BudgetSlots, "does not work behind a transaction-mode pooler (advisory locks belong to the "+
			"pooler's server sessions, not to this service's clients): the pooler's client limit is the budget there; set RUNPOOL_BUDGET_SLOTS=off")
	}
	return nil
}

func setBudgetSlots(c *Config, v string) error {
	v = strings.ToLower(v)
	if v != BudgetSlotsOff && v != BudgetSlotsAdvisory {
		return problem("must be off or advisory")
	}
	c.BudgetSlots = v
	return nil
}
