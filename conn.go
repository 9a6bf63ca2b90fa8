package runpool

import (
	"context"
	"time"

	"github.com/jackc/puddle/v2"
)

// Conn is a connection checked out of a Pool (Acquire). Release it
// exactly once.
type Conn[C any] struct {
	e      *entry[C] // nil once released
	parked bool      // Park left the connection here (park.go)
}

func (e *entry[C]) handle() *Conn[C] {
	if len(e.conns) == 0 {
		e.conns = make([]Conn[C], 64)
	}
	c := &e.conns[len(e.conns)-1]
	e.conns = e.conns[:len(e.conns)-1]
	c.e = e
	return c
}

// Value returns the driver connection. It must not be used after Release.
func (c *Conn[C]) Value() C { return c.e.conn }

// Release returns the connection to the pool. A connection that is not
// reusable (closed, busy, inside a transaction), past its lifetime, or
// released while the pool drains is closed instead. Release on an already
// released Conn does nothing.
func (c *Conn[C]) Release() {
	e := c.e
	if e == nil {
		return
	}
	c.e = nil
	p := e.pool
	if c.parked {
		c.parked = false
		if e.parkedBy.CompareAndSwap(c, nil) { // else the pool took it back
			p.returnIdle(e.res) // checked in when it was parked
		}
		return
	}
	res := e.res
	if p.hooks.OnRelease != nil {
		p.hooks.OnRelease(e.conn)
	}
	now := nanotime()
	if !p.checkIn(res, e, now) {
		return
	}
	e.epoch = p.policy.epoch.Load()
	e.idleSince = now
	if p.hooks.AfterRelease != nil {
		go p.afterRelease(res, e)
		return
	}
	p.putIdle(res)
}

// putIdle puts a checked-in connection on puddle's idle list and wakes the
// callers waiting for one. ReleaseUnused: puddle's own last-used stamp
// would cost a second clock read; idle times are measured from idleSince.
func (p *Pool[C]) putIdle(res *puddle.Resource[*entry[C]]) {
	if p.waiters.Load() > 0 && p.q.handTo(res) {
		p.counters.handedOver.Add(1)
		return
	}
	res.ReleaseUnused()
	if p.waiters.Load() > 0 {
		p.wake() // a caller backing off, or between two waits
		return
	}
	p.noteQuiet()
}

// passOn returns a connection handed to a caller that gave up meanwhile:
// to the next caller in line, or to the idle list.
func (p *Pool[C]) passOn(res *puddle.Resource[*entry[C]]) {
	p.counters.notHandedOut.Add(1)
	p.returnIdle(res)
}

// checkIn is the bookkeeping of a connection coming back at now (Release,
// Park). It reports whether the connection may stay in the pool; when
// not, it has closed it: not reusable (closed, busy, inside a
// transaction), past its lifetime or its lease, or the pool drains.
func (p *Pool[C]) checkIn(res *puddle.Resource[*entry[C]], e *entry[C], now int64) bool {
	if e.since != 0 {
		p.m.useTime.Record(context.Background(), nanosToSeconds(now-e.since), p.m.rec...)
		e.since = 0
	}
	if e.outWhileWaited != 0 {
		p.policy.useTook(time.Duration(now - e.outWhileWaited))
		e.outWhileWaited = 0
	}
	e.inUse.Store(false)
	if !p.connector.Reusable(e.conn) {
		p.counters.brokenOnRelease.Add(1)
		if p.endedIdle(e) {
			p.destroy(res)
			return false
		}
		if p.witness != nil {
			if in := p.witness.Interruption(e.conn); !in.At.IsZero() {
				// Closed without a goodbye of the pool's own: the
				// driver's is under way, and its answer is the verdict.
				p.settleInterrupted(e, in)
				p.destroy(res)
				return false
			}
		}
		p.policy.distrust() // its siblings may be dead too
		e.dead.Store(true)
		p.destroy(res)
		return false
	}
	if p.roleChanged(res, e) {
		return false
	}
	if now >= e.expiresAt {
		p.counters.lifetimeExpired.Add(1)
		p.destroy(res)
		return false
	}
	// onLease reads puddle's Stat: last, so that a release the lease
	// would not end allocates nothing.
	if e.borrowed && (now-e.created >= int64(borrowLease) || p.policy.contended(now) && p.aboveSlack()) && p.onLease(e) {
		p.counters.borrowReturned.Add(1)
		p.slotGivenBack(e.created, now)
		p.leaseEnded(now)
		p.destroy(res)
		return false
	}
	if p.draining.Load() && !p.neededInDrain() {
		p.destroy(res)
		return false
	}
	return true
}

// Destroy closes the connection instead of returning it, for a caller that
// knows it is broken.
func (c *Conn[C]) Destroy() {
	e := c.e
	if e == nil {
		return
	}
	c.e = nil
	if c.parked {
		c.parked = false
		if !e.parkedBy.CompareAndSwap(c, nil) {
			return // the pool took it back
		}
	}
	p := e.pool
	if e.since != 0 {
		p.m.useTime.Record(context.Background(), nanosToSeconds(nanotime()-e.since), p.m.rec...)
		e.since = 0
	}
	e.inUse.Store(false)
	e.dead.Store(true)
	p.destroy(e.res)
}

func (p *Pool[C]) destroy(res *puddle.Resource[*entry[C]]) {
	res.Destroy()
	if p.isDraining() {
		p.afterDrainRelease()
	}
}

// checkOut hands a checked connection to its caller. While callers wait for
// a connection it notes when, so that Release can time the use
// (the policy's useNanos) that tells whether waiting beats dialing.
func (p *Pool[C]) checkOut(res *puddle.Resource[*entry[C]], e *entry[C], now int64) *Conn[C] {
	e.res = res
	p.markCheckedOut(e, now)
	return e.handle()
}

// markCheckedOut notes a checkout at now (checkOut, Unpark).
func (p *Pool[C]) markCheckedOut(e *entry[C], now int64) {
	e.inUse.Store(true)
	e.out = now
	if p.waiters.Load() > 0 {
		e.outWhileWaited = now
	}
}
