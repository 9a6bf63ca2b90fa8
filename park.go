package runpool

import (
	"context"

	"github.com/jackc/puddle/v2"
)

// Parking lets a caller that keeps connections idle itself (database/sql
// keeps its idle driver.Conns) return one to the pool and take the same
// one back without the pool's lock: Park returns it, Unpark takes it back
// when the pool has not needed it meanwhile and the checks a checkout
// makes would pass without I/O (the same freeze, idle, lifetime and
// drain rules). The pool takes every parked connection back, without the
// holder's help, as each call of Acquire begins (so that no caller waits
// or dials for a slot a parked connection holds), at every maintainer
// tick (so idle and lifetime expiry, orphan ending and MinConns see them)
// and when the drain begins.

// parker is the optional method by which a Connector says its callers
// park connections: a pool whose connector has a Parks method that
// reports true counts callers on its slow path, so that none waits for
// a slot a parked connection holds. On any other pool Park is Release.
// sqladapter's connector has it.
type parker interface {
	Parks() bool
}

// Park returns the connection to the pool, as Release does, but leaves it
// with c, for Unpark to take back. It parks only on a pool whose
// connector has a method Parks() bool that reports true; on other pools
// Park is Release. The connection's idle time counts from its checkout,
// so that Park reads no clock: a connection used for longer than
// Config.ProbeAfterIdle is probed at its next checkout. Park reports
// whether it parked the connection; when not (the connection was closed,
// or given to the pool's idle list because callers wait for one, the
// pool drains, or it is past its lifetime or its lease), c is released
// and must not be used again. Park on a connection already parked does
// nothing and reports true.
func (c *Conn[C]) Park() bool {
	e := c.e
	if e == nil || c.parked {
		return c.parked
	}
	p, res := e.pool, e.res
	if !p.parking || e.borrowed || p.acquiring.Load() > 0 || p.waiters.Load() > 0 {
		c.Release()
		return false
	}
	// The idle time counts from the checkout: no clock read here (it
	// would cost a tenth of a database/sql checkout), and a connection
	// used past ProbeAfterIdle is probed on its next checkout.
	now := e.out
	if e.since != 0 || e.outWhileWaited != 0 {
		now = nanotime() // to time the use
	}
	if !p.checkIn(res, e, now) {
		c.e = nil
		return false
	}
	e.epoch = p.policy.epoch.Load()
	e.idleSince = now
	c.parked = true
	e.parkedBy.Store(c)
	// A caller may have begun to wait, or the drain to begin, after the
	// look above: either it sees the connection parked and takes it back,
	// or this sees it and returns the connection to the pool.
	if p.acquiring.Load() > 0 || p.waiters.Load() > 0 || p.draining.Load() {
		c.parked = false
		c.e = nil
		if e.parkedBy.CompareAndSwap(c, nil) {
			p.returnIdle(res)
		}
		return false
	}
	p.noteQuiet() // a parked connection is idle, as one put back is
	return true
}

// Unpark takes back the connection c parked. It reports false, with c
// released, when the pool took the connection back meanwhile or a
// checkout could not trust it without a probe; the caller then acquires
// one (which may be the same connection, probed). ctx is the checkout's,
// for the metrics. On a Conn that is not parked, Unpark reports whether
// it is still held (not released).
func (c *Conn[C]) Unpark(ctx context.Context) bool {
	if !c.parked {
		return c.e != nil
	}
	e := c.e
	c.parked = false
	c.e = nil
	if !e.parkedBy.CompareAndSwap(c, nil) {
		return false // the pool took it back
	}
	p, res := e.pool, e.res // read once the connection is this caller's
	now := nanotime()
	a := p.policy.idle(now, &e.stamps, &p.rules, false)
	if a.do.unprobed() && !p.draining.Load() {
		if a.do == idleHandOut || p.looksOpen(e) {
			e.unparks.Add(1)
			c.e = e
			if p.m.timing() {
				e.since = now
				p.m.waitTime.Record(ctx, 0, p.m.rec...)
			}
			p.markCheckedOut(e, now)
			return true
		}
		p.discardGone(res, e)
		return false
	}
	// Acquire's checks decide: a probe, a discard, or the drain's close.
	p.returnIdle(res)
	return false
}

// Ref returns a reference to the connection c holds, which outlives c's
// release: a parker whose Unpark failed learns from it whether the pool
// closed that connection as dead, as a driver whose own check found it
// dead would drop its record of it (sqladapter has database/sql discard
// such a shell). Taking one costs no allocation; it keeps the pool's
// record of the connection reachable, so do not keep it long.
func (c *Conn[C]) Ref() ConnRef[C] { return ConnRef[C]{c.e} }

// ConnRef refers to a connection a Conn held (Conn.Ref).
type ConnRef[C any] struct{ e *entry[C] }

// Dead reports whether the pool has closed the connection as unusable: the
// server ended it, a look at its socket or a probe failed, it came back
// broken or its holder destroyed it, or it was condemned with its siblings
// after such a failure or a freeze. One closed for another reason (its
// lifetime, its idle time, the drain) is not dead. The zero ConnRef is
// not dead.
func (r ConnRef[C]) Dead() bool { return r.e != nil && r.e.dead.Load() }

// returnIdle puts a connection taken back from its parker in the idle
// list, as it was parked, or closes it when the pool drains.
func (p *Pool[C]) returnIdle(res *puddle.Resource[*entry[C]]) {
	if p.draining.Load() && !p.neededInDrain() {
		p.destroy(res)
		return
	}
	p.putIdle(res)
}

// takeParked takes every parked connection back into the idle list and
// reports how many it took.
func (p *Pool[C]) takeParked() int {
	if !p.parking {
		return 0
	}
	var took []*puddle.Resource[*entry[C]]
	p.mu.Lock()
	for e := range p.entries {
		if h := e.parkedBy.Load(); h != nil && e.parkedBy.CompareAndSwap(h, nil) {
			took = append(took, e.res)
		}
	}
	p.mu.Unlock()
	for _, res := range took {
		p.returnIdle(res)
	}
	return len(took)
}

// parkedNow counts the parked connections, for Stat and the metrics.
func (p *Pool[C]) parkedNow() (parked int32, unparks int64) {
	if !p.parking {
		return 0, 0
	}
	p.mu.Lock()
	for e := range p.entries {
		if e.parkedBy.Load() != nil {
			parked++
		}
		unparks += e.unparks.Load()
	}
	unparks += p.counters.unparks.Load()
	p.mu.Unlock()
	return parked, unparks
}
