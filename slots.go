package runpool

import (
	"errors"
	"fmt"
	"strings"
)

// Budget slots (Config.BudgetSlots). With slots on, the database itself
// enforces the budget, on any server: each server connection of the
// service holds one of Budget-Reserve session advisory locks, taken in the
// same round trip as the session's setup (internal/pgxconn). A dial that
// finds every slot held fails with a *NoSlotError, which reports SQLSTATE
// 53300: the pool treats it as it treats a full server (back-pressure,
// and the contention rule of policy.dialOrWait, which here keeps an
// instance above its fair share at half of what it borrowed for a while:
// slotSlack, slotsevents.go). Since the locks, not the division, keep the total within
// the budget, the pool borrows beyond its fair share on a lease, as it
// does where the server's own limit is the budget (budget.go).
//
// Every connection holds a slot (the guaranteed floor is 0): a floor of
// unlocked connections per instance would leave to the locks only what
// the division leaves over, which is nothing to share. An instance's
// fair share is guaranteed instead by the contention rule: an instance
// above its share that meets "no free slot" gives back half of what it
// borrowed, and borrowed connections go back within borrowLease.

// Values of Config.BudgetSlots.
const (
	BudgetSlotsOff      = "off"      // the division alone keeps the total within the budget (default)
	BudgetSlotsAdvisory = "advisory" // session advisory locks enforce the budget
)

// ErrNoFreeSlot is wrapped by the error of a dial that found every
// budget slot held (see NoSlotError).
var ErrNoFreeSlot = errors.New("runpool: no free budget slot")

// NoSlotError is a dial's error when every one of the service's budget
// slots is held by other connections: the service uses its whole budget.
// It reports SQLSTATE 53300 (too many connections), so the pool waits it
// out as back-pressure, and errors.Is(err, ErrNoFreeSlot) holds.
type NoSlotError struct {
	Slots int // the number of slots (Budget - Reserve)
}

func (e *NoSlotError) Error() string {
	return fmt.Sprintf("runpool: no free budget slot: the service holds all %d (RUNPOOL_BUDGET less RUNPOOL_RESERVE)", e.Slots)
}

// SQLState is 53300, so that the pool treats the error as a full server.
func (e *NoSlotError) SQLState() string { return "53300" }

// Is makes errors.Is(err, ErrNoFreeSlot) hold.
func (e *NoSlotError) Is(target error) bool { return target == ErrNoFreeSlot }

// SlotsOn reports whether the budget slots are on: BudgetSlots is
// advisory (Validate has checked a budget is set and no pooler is in
// front).
func (c Config) SlotsOn() bool { return c.BudgetSlots == BudgetSlotsAdvisory }

// Slots is the number of budget slots: Budget less Reserve, 0 when the
// slots are off.
func (c Config) Slots() int {
	if !c.SlotsOn() {
		return 0
	}
	return c.Budget - c.Reserve
}

// validateSlots checks BudgetSlots against the settings it needs: a
// budget, known before the first dial (each connection takes a slot,
// the first included), and session-mode connections (a transaction-mode
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
