package runpool

import (
	"context"
)

// Reset closes every connection and leaves the pool open, as pgxpool's
// Reset does: idle connections at once, borrowed ones as they are
// released, and those being dialled as their dials end. It is for a
// caller that knows every connection is spoilt in a way the pool cannot
// see (a failover behind an unchanged address, a changed credential or
// session setting); the next checkouts dial afresh.
func (p *Pool[C]) Reset() {
	p.takeParked() // parked connections are idle
	p.p.Reset()
	if p.waiters.Load() > 0 {
		p.wakeAll() // the slots are free: a waiting caller may dial
	}
}

// AcquireAllIdle checks out every connection idle at the call, for
// keep-alive and health checks run by the caller, as pgxpool's
// AcquireAllIdle does. Each passes the checks Acquire makes (a probe
// where Acquire would probe, the PrepareConn hook); one that fails them
// is closed, or left idle when the hook failed with ok true, and left
// out. Once ctx is done the rest stay idle. Release each Conn as usual.
func (p *Pool[C]) AcquireAllIdle(ctx context.Context) []*Conn[C] {
	p.takeParked() // parked connections are idle
	idle := p.p.AcquireAllIdle()
	conns := make([]*Conn[C], 0, len(idle))
	var rejected int // handOut's count; no bound applies here
	for _, res := range idle {
		if ctx.Err() != nil {
			p.returnIdle(res)
			continue
		}
		e := res.Value()
		now, ok := p.inspect(ctx, res, e, false)
		if !ok {
			continue
		}
		if c, _ := p.handOut(ctx, res, e, now, &rejected); c != nil {
			conns = append(conns, c)
		}
	}
	return conns
}
