package pgxadapter

import "context"

// Reset closes every connection and leaves the pool open, as pgxpool's
// Reset does: idle connections at once, the ones in use as they are
// released. It is for an error that spoils every connection in a way
// runpool's checks cannot see (a failover behind an unchanged address, a
// rotated credential).
func (p *Pool) Reset() { p.p.Reset() }

// AcquireAllIdle checks out every idle connection at once, for keep-alive
// and health checks run by the caller, as pgxpool's AcquireAllIdle does.
// Each passes runpool's checkout checks (a probe where Acquire would
// probe) and PrepareConn (or BeforeAcquire); one that fails them is left
// out. Release each Conn when done.
func (p *Pool) AcquireAllIdle(ctx context.Context) []*Conn {
	rcs := p.p.AcquireAllIdle(ctx)
	conns := make([]*Conn, len(rcs))
	for i, c := range rcs {
		conns[i] = (*Conn)(c)
	}
	return conns
}
