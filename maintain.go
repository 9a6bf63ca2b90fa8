package runpool

import (
	"time"
)

// maintain is the pool's ticker: freeze detection, idle and lifetime
// expiry. It never blocks on I/O, since the gaps between its ticks are
// what tells a freeze of the process: the slow work (ending orphaned
// sessions, dialing the MinConns floor) runs on a worker goroutine it
// hands each tick to, so the maintainer being busy is never taken for
// the process being stopped.
// With fillNow the worker dials the floors at once, as pgxpool opens
// them, instead of at the first tick.
func (p *Pool[C]) maintain(fillNow bool) {
	defer close(p.maintainerDone)
	work := make(chan struct{}, 1)
	if fillNow {
		work <- struct{}{}
	}
	workerDone := make(chan struct{})
	go p.work(work, workerDone)
	defer func() { <-workerDone }()
	t := time.NewTicker(p.cfg.MaintainInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stopMaintainer:
			return
		case <-t.C:
			p.tick(time.Now())
			select {
			case work <- struct{}{}:
			default: // the worker is still at an earlier tick's work
			}
		}
	}
}

func (p *Pool[C]) tick(now time.Time) {
	p.takeParked() // for the checks below
	p.observeTick(now)
	p.sweepIdle()
	p.logStale(now, false)
	p.logSlots(nanotime())
	p.m.refreshTiming()
}

// work is the maintainer's worker: at each tick handed to it, it ends
// orphaned sessions, gives a quiet instance's slot back (yieldSlot) and
// dials the MinConns and MinIdleConns floors. Shutdown stops it and
// cancels its dials and its ending of orphans (Pool.bg): the drain waits
// for the worker, and must not wait past its own deadline for a
// connection that stopped answering.
func (p *Pool[C]) work(ticks <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-p.stopMaintainer:
			return
		case <-ticks:
			p.endOrphans(p.bg, true)
			p.yieldSlot(p.bg)
			p.ensureMinConns()
		case <-p.yieldNow:
			p.takeParked() // a quiet instance's only connection may be parked
			p.yieldSlot(p.bg)
		}
	}
}

// ensureMinConns opens connections, one at a time, while the pool holds
// fewer than MinConns or fewer than MinIdleConns are idle, until one
// fails or the pool is full.
func (p *Pool[C]) ensureMinConns() {
	if p.cfg.MinConns == 0 && p.cfg.MinIdleConns == 0 {
		return
	}
	for !p.isDraining() {
		st := p.p.Stat()
		if st.TotalResources() >= p.cfg.MinConns && st.IdleResources() >= p.cfg.MinIdleConns {
			return
		}
		if !p.createIntoPool(nil) {
			return
		}
	}
}
