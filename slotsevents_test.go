package runpool

import "testing"

// With budget slots, a refused dial holds a pool above its fair share
// back (contended) only when another instance waits below its share
// (NoSlotError.Waiting); a refusal without a waiter is counted, and the
// pool keeps what it borrowed.
func TestSlotRefusalContendsOnlyWhenOthersWait(t *testing.T) {
	p, _ := openFake(t, Config{Budget: 12, MaxInstances: 4, BudgetSlots: BudgetSlotsAdvisory})
	if p.cfg.fairShare == 0 {
		t.Fatal("no fair share: the test needs one")
	}
	p.budgetFull(&NoSlotError{Slots: p.cfg.Slots()})
	if p.policy.contended(nanotime()) {
		t.Fatal("contended after a refusal with nobody waiting below its share")
	}
	if got := p.m.slots.waitsTotal.Load(); got != 1 {
		t.Fatalf("%d slot waits counted, want 1", got)
	}
	p.budgetFull(&NoSlotError{Slots: p.cfg.Slots(), Waiting: true})
	if !p.policy.contended(nanotime()) {
		t.Fatal("not contended after a refusal while another instance waits below its share")
	}
}
