package runpool

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The setting is off unless asked for, needs a budget, and is refused
// behind a transaction-mode pooler, each with a message that names it.
func TestSlotSettings(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // "" for valid
	}{
		{Config{}, ""},
		{Config{BudgetSlots: BudgetSlotsOff}, ""},
		{Config{BudgetSlots: BudgetSlotsAdvisory, Budget: 10}, ""},
		{Config{BudgetSlots: BudgetSlotsAdvisory}, "needs Budget"},
		{Config{BudgetSlots: BudgetSlotsAdvisory, Budget: 10, Pooler: PoolerPgBouncer}, "transaction-mode pooler"},
		{Config{BudgetSlots: "locks", Budget: 10}, "off or advisory"},
		{Config{BudgetSlots: BudgetSlotsAdvisory, Budget: 11, MaxInstances: 10}, "leaves no slot"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg.BudgetSlots, err, tc.want)
		}
	}
	if n := (Config{BudgetSlots: BudgetSlotsAdvisory, Budget: 10, Reserve: 2}).Slots(); n != 6 { // 2 passes: 1 instance with the surge margin
		t.Errorf("slots of budget 10 less reserve 2: %d", n)
	}
	if n := (Config{Budget: 10}).Slots(); n != 0 {
		t.Errorf("slots with the setting off: %d", n)
	}
	c, err := configFromLookup(Config{}, func(k string) (string, bool) {
		return map[string]string{"RUNPOOL_BUDGET_SLOTS": "Advisory", "RUNPOOL_BUDGET": "10"}[k], k == "RUNPOOL_BUDGET_SLOTS" || k == "RUNPOOL_BUDGET"
	})
	if err != nil || !c.SlotsOn() {
		t.Fatalf("from the environment: %+v %v", c.BudgetSlots, err)
	}
	var noSlot error = &NoSlotError{Slots: 8}
	if !tooManyConnections(noSlot) || !errors.Is(noSlot, ErrNoFreeSlot) {
		t.Fatal("NoSlotError is not back-pressure (53300) or not ErrNoFreeSlot")
	}
}

// slotServer stands for the database's slots: n of them shared by every
// fake instance's connector.
type slotServer struct {
	mu   sync.Mutex
	n    int
	held int
}

// slotConnector is a fakeConnector whose connections each hold one of
// the slotServer's slots.
type slotConnector struct {
	fakeConnector
	s *slotServer
}

func (k *slotConnector) Connect(ctx context.Context) (*fakeConn, error) {
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	if k.s.held == k.s.n {
		return nil, &NoSlotError{Slots: k.s.n}
	}
	k.s.held++
	return k.fakeConnector.Connect(ctx)
}

func (k *slotConnector) Close(c *fakeConn, dead bool) {
	k.s.mu.Lock()
	k.s.held--
	k.s.mu.Unlock()
	k.fakeConnector.Close(c, dead)
}

// With every slot held by another instance, a caller waits as on 53300
// and is served as soon as the other gives back; the refusal is counted
// and the episode logged once.
func TestSlotWaitIsBackpressure(t *testing.T) {
	s := &slotServer{n: 2}
	var logged atomic.Int64
	log := slog.New(countingHandler{&logged})
	cfg := Config{Budget: 4, MaxConns: 2, BudgetSlots: BudgetSlotsAdvisory, Logger: log}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	other := openOnSlots(t, ctx, cfg, s)
	a, _ := other.Acquire(ctx)
	b, err := other.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := New(Config{MaxConns: 2, Logger: log, BudgetSlots: BudgetSlotsAdvisory, Budget: 4}, &slotConnector{s: s}, Hooks[*fakeConn]{})
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		a.Destroy()
		b.Release()
	}()
	start := time.Now()
	c, err := mine.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire with every slot held: %v", err)
	}
	c.Release()
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("served after %v, before a slot was free", waited)
	}
	if mine.Stat().SlotWaitCount() == 0 {
		t.Fatal("no slot wait counted")
	}
	if logged.Load() != 1 {
		t.Fatalf("%d log lines about the slots, want the episode's first", logged.Load())
	}
	if s.held > s.n {
		t.Fatalf("%d slots held of %d", s.held, s.n)
	}
}

// countingHandler counts the log lines about budget slots.
type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "budget slots") {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// Callers waiting out a full budget retry on their backoff schedule: a
// refused dial does not wake another backing-off caller, which would be
// refused in turn and wake the next, at CPU speed while no slot frees.
func TestRefusedDialsDoNotSpin(t *testing.T) {
	s := &slotServer{n: 2}
	cfg := Config{Budget: 6, MaxConns: 4, BudgetSlots: BudgetSlotsAdvisory}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	openOnSlots(t, ctx, cfg, s) // another instance
	mine := openOnSlots(t, ctx, cfg, s)
	held, err := mine.Acquire(ctx) // the budget is full now: each holds one slot
	if err != nil {
		t.Fatal(err)
	}
	const callers, wait = 6, 300 * time.Millisecond
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			if c, err := mine.Acquire(ctx); err == nil {
				c.Release()
			}
		})
	}
	wg.Wait()
	held.Release()
	// Backoff from 10 ms, doubling: a handful of tries each in 300 ms.
	refused := mine.Stat().SlotWaitCount()
	t.Logf("%d callers waiting %v with every slot held: %d dials refused", callers, wait, refused)
	if refused > 20*callers {
		t.Fatalf("%d dials refused in %v for %d callers: refusals wake each other", refused, wait, callers)
	}
}

// openOnSlots opens a pool of cfg on s, closed at the test's end.
func openOnSlots(t *testing.T, ctx context.Context, cfg Config, s *slotServer) *Pool[*fakeConn] {
	t.Helper()
	p, err := Open(ctx, cfg, &slotConnector{s: s}, Hooks[*fakeConn]{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
