package runpool

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// What the pool records of the budget slots (slots.go): the instruments,
// and one pair of log lines per episode of a full budget, as for
// back-pressure (events.go).

// slotMetrics are the slots' instruments and the current episode.
type slotMetrics struct {
	held     metric.Int64ObservableUpDownCounter // connections holding a slot
	waits    metric.Int64Counter                 // dials refused for want of a free slot
	gaveBack metric.Int64Counter                 // borrowed connections closed early for fairness
	reg      metric.Registration

	// The episode: it begins with the first dial refused for want of a
	// slot while no episode runs, and ends at the first maintainer tick
	// after the contention it caused has passed (policy.contended).
	since        atomic.Int64 // nanotime it began, 0 for none
	waitsIn      atomic.Int64 // dials refused in it
	gaveBackIn   atomic.Int64 // borrowed connections closed early for fairness in it
	waitsTotal   atomic.Int64
	gaveBackTotl atomic.Int64

	// slack is how many connections beyond its fair share a contended
	// pool keeps (slotSlack).
	slack atomic.Int32
}

// init creates the slots' instruments on mt; keep collects the errors.
func (s *slotMetrics) init(mt metric.Meter, keep func(error)) {
	var err error
	s.held, err = mt.Int64ObservableUpDownCounter("runpool.budget.slots.held", metric.WithUnit("{slot}"),
		metric.WithDescription("Budget slots this instance holds (RUNPOOL_BUDGET_SLOTS=advisory): one per open connection but the one holding the instance's pass."))
	keep(err)
	s.waits, err = mt.Int64Counter("runpool.budget.slot_waits", metric.WithUnit("{dial}"),
		metric.WithDescription("Dials refused because every budget slot was held: the service used its whole budget, and the caller waited as on 53300."))
	keep(err)
	s.gaveBack, err = mt.Int64Counter("runpool.budget.slots.given_back", metric.WithUnit("{slot}"),
		metric.WithDescription("Borrowed connections closed on release before their lease ended, because the budget was full: their slots go to instances below their fair share."))
	keep(err)
}

// registerSlotGauge observes the slots held, when the slots are on.
func (p *Pool[C]) registerSlotGauge() {
	if !p.cfg.SlotsOn() {
		return
	}
	s := &p.m.slots
	reg, err := p.m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(s.held, int64(p.slotsHeld()), p.m.obs...)
		return nil
	}, s.held)
	if err == nil {
		s.reg = reg
	}
}

// slotsHeld is the number of the pool's connections that hold a slot:
// the connector's count, else every open connection.
func (p *Pool[C]) slotsHeld() int {
	if p.slotter != nil {
		return p.slotter.SlotsHeld()
	}
	return int(p.openConns())
}

// unregisterSlotGauge undoes registerSlotGauge.
func (p *Pool[C]) unregisterSlotGauge() {
	if p.m.slots.reg != nil {
		_ = p.m.slots.reg.Unregister()
	}
}

// budgetFull follows a dial that met 53300, the server's or the slots'
// (NoSlotError): a pool with a fair share keeps to it for contentionHold
// (policy.dialOrWait). A refusal for want of a slot is counted, and the
// first of an episode logged.
func (p *Pool[C]) budgetFull(err error) {
	if !errors.Is(err, ErrNoFreeSlot) {
		if p.cfg.fairShare > 0 {
			p.policy.serverFull(nanotime())
		}
		return
	}
	s := &p.m.slots
	var ns *NoSlotError
	if fs := p.cfg.fairShare; fs > 0 && errors.As(err, &ns) && ns.Waiting {
		// The slots it holds, not its connections: one on the pass (the
		// dial that just met the full budget may be it) takes no slot
		// from the others, and counting it would keep the slack at 1
		// however often the pool is refused.
		s.slack.Store(int32(max(p.slotsHeld()-int(fs), 0) / 2))
		p.policy.serverFull(nanotime())
	}
	s.waits.Add(context.Background(), 1, p.m.add...)
	s.waitsTotal.Add(1)
	s.waitsIn.Add(1)
	if s.since.CompareAndSwap(0, nanotime()) {
		p.cfg.Logger.Info("runpool: budget slots full: the service holds its whole budget; while another instance waits "+
			"below its fair share, this one gives back half of what it holds beyond its share as connections come back",
			"pool", p.cfg.Name, "slots", p.cfg.Slots(), "held", p.openConns(), "fair_share", p.cfg.fairShare,
			"others_wait", ns != nil && ns.Waiting)
	}
}

// With budget slots, a refused dial also tells the pool whether another
// instance waits below its fair share (NoSlotError.Waiting: its want
// mark, internal/pgxconn's mark.go). Only then does a pool above its
// share that is refused keep half of what it holds beyond its share
// (slotSlack) for contentionHold, closing the rest of its borrowed
// connections as they come back, and grow again once the hold ends: the
// instances above their share shrink by halves, and the one below finds
// the slots they free. Without a waiter, a few busy instances keep what
// they borrowed from the idle ones until their leases end. Where the
// server's own limit is the budget, a 53300 holds the pool to its fair
// share as before.

// belowShare reports whether the pool holds fewer connections than its
// fair share while callers want more (waiting, or a dial opening): its
// tries for a slot that find none free leave the want mark
// (SlotHolder.WatchShare).
func (p *Pool[C]) belowShare() bool {
	fs := p.cfg.fairShare
	if fs == 0 {
		return false
	}
	st := p.p.Stat()
	return st.TotalResources()-st.ConstructingResources() < fs && (p.waiters.Load() > 0 || st.ConstructingResources() > 0)
}

// leasePause is how long a pool with budget slots borrows no more once
// a borrowed connection went back (leaseEnded): long enough for an
// instance below its share to take the slot, whose connection holding
// the pass tries for one at its next checkout, a query's time away.
const leasePause = 100 * time.Millisecond

// leaseEnded follows a borrowed connection closed on release at now:
// with budget slots, the pool borrows no more for leasePause. Its
// callers would dial again at once and take back the slot the lease
// gave up, before an instance waiting below its share, whose dials the
// full slots refuse, could; the lease would then give nothing back.
func (p *Pool[C]) leaseEnded(now int64) {
	if p.cfg.SlotsOn() {
		p.policy.borrowPausedUntil.Store(now + int64(leasePause))
	}
}

// wantsSlot reports at now whether callers wait that another slot
// would serve: not while a full budget holds the pool to its fair share
// and it holds that much (policy.dialOrWait holds its dials back then;
// its connection on the pass must not take the slot either, which an
// instance below its share waits for).
func (p *Pool[C]) wantsSlot(now int64) bool {
	if p.waiters.Load() == 0 {
		return false
	}
	if fs := p.cfg.fairShare; fs > 0 && p.policy.contended(now) {
		return p.openConns() < fs
	}
	return true
}

// slotSlack is how many connections beyond its fair share the pool keeps
// while contended: 0 unless slots are on.
func (p *Pool[C]) slotSlack() int32 {
	if !p.cfg.SlotsOn() {
		return 0
	}
	return p.m.slots.slack.Load()
}

// aboveSlack reports whether the pool holds more than its fair share and
// slack: a borrowed connection coming back while contended is closed.
func (p *Pool[C]) aboveSlack() bool { return p.openConns() > p.cfg.fairShare+p.slotSlack() }

// slotGivenBack counts a borrowed connection closed on release at now,
// created at created, before its lease ended because the budget was full.
func (p *Pool[C]) slotGivenBack(created, now int64) {
	if !p.cfg.SlotsOn() || now-created >= int64(borrowLease) {
		return
	}
	s := &p.m.slots
	s.gaveBack.Add(context.Background(), 1, p.m.add...)
	s.gaveBackTotl.Add(1)
	s.gaveBackIn.Add(1)
}

// logSlots ends, at a maintainer tick, an episode of a full budget whose
// contention has passed, with one line.
func (p *Pool[C]) logSlots(now int64) {
	s := &p.m.slots
	since := s.since.Load()
	if since == 0 || p.policy.contended(now) || !s.since.CompareAndSwap(since, 0) {
		return
	}
	p.cfg.Logger.Info("runpool: budget slots free again", "pool", p.cfg.Name,
		"duration", time.Duration(now-since).Round(time.Millisecond),
		"slot_waits", s.waitsIn.Swap(0), "given_back", s.gaveBackIn.Swap(0))
}
