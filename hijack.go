package runpool

import "context"

// Hijack takes the connection out of the pool and returns it: the pool
// forgets it (it no longer counts toward MaxConns, and neither the drain
// nor Reset waits for or closes it), and the caller owns it and must
// close it. As pgxpool's Conn.Hijack does, it panics on a Conn already
// released or hijacked; a parked Conn counts as released unless Unpark
// took it back.
func (c *Conn[C]) Hijack() C {
	e := c.e
	if e == nil {
		panic("runpool: Hijack of a connection already released or hijacked")
	}
	c.e = nil
	if c.parked {
		c.parked = false
		if !e.parkedBy.CompareAndSwap(c, nil) {
			panic("runpool: Hijack of a parked connection the pool took back")
		}
	}
	p := e.pool
	if e.since != 0 {
		p.m.useTime.Record(context.Background(), nanosToSeconds(nanotime()-e.since), p.m.rec...)
		e.since = 0
	}
	e.inUse.Store(false)
	p.forget(e)
	e.res.Hijack()
	if p.waiters.Load() > 0 || p.isDraining() {
		p.wakeAll() // its slot is free; the drain counts one fewer
	}
	return e.conn
}

// forget removes e from the pool's own records, when it is closed or
// hijacked.
func (p *Pool[C]) forget(e *entry[C]) {
	p.mu.Lock()
	delete(p.entries, e)
	p.held.Store(int32(len(p.entries)))
	p.counters.unparks.Add(e.unparks.Load()) // under mu: parkedNow sums both
	p.mu.Unlock()
	if e.borrowed {
		p.borrowedOpen.Add(-1)
	}
}
