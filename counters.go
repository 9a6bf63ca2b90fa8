package runpool

import (
	"sync/atomic"
)

// counters are the pool's own event counts, beyond puddle's.
type counters struct {
	newConns        atomic.Int64
	idleExpired     atomic.Int64
	lifetimeExpired atomic.Int64
	brokenOnRelease atomic.Int64
	probes          atomic.Int64
	probeFailures   atomic.Int64
	staleDiscarded  atomic.Int64
	freezes         atomic.Int64
	backoffs        atomic.Int64
	borrowReturned  atomic.Int64
	timeouts        atomic.Int64
	dialFailures    atomic.Int64
	hedgedDials     atomic.Int64
	orphansEnded    atomic.Int64
	unparks         atomic.Int64 // Unpark's checkouts of connections closed since
	// notHandedOut counts puddle's checkouts that acquire did not hand out
	// (closed on checkout, rejected), which puddle's AcquireCount counts.
	notHandedOut atomic.Int64
	// handedOver counts connections handed from a release to a waiting
	// caller, checkouts that puddle does not see.
	handedOver atomic.Int64
	// canceledAcquires counts acquires that ended because their context
	// did, wherever they waited (puddle, a dial turn, back-pressure).
	canceledAcquires atomic.Int64
	staleBy          [numStaleReasons]atomic.Int64
}

type counterSnapshot struct {
	newConns, idleExpired, lifetimeExpired, brokenOnRelease int64
	probes, probeFailures, staleDiscarded, freezes          int64
	backoffs, borrowReturned, timeouts, dialFailures        int64
	hedgedDials, orphansEnded                               int64
	notHandedOut, canceledAcquires, handedOver              int64
}

func (c *counters) snapshot() counterSnapshot {
	return counterSnapshot{
		newConns:         c.newConns.Load(),
		idleExpired:      c.idleExpired.Load(),
		lifetimeExpired:  c.lifetimeExpired.Load(),
		brokenOnRelease:  c.brokenOnRelease.Load(),
		probes:           c.probes.Load(),
		probeFailures:    c.probeFailures.Load(),
		staleDiscarded:   c.staleDiscarded.Load(),
		freezes:          c.freezes.Load(),
		backoffs:         c.backoffs.Load(),
		borrowReturned:   c.borrowReturned.Load(),
		timeouts:         c.timeouts.Load(),
		dialFailures:     c.dialFailures.Load(),
		hedgedDials:      c.hedgedDials.Load(),
		orphansEnded:     c.orphansEnded.Load(),
		notHandedOut:     c.notHandedOut.Load(),
		canceledAcquires: c.canceledAcquires.Load(),
		handedOver:       c.handedOver.Load(),
	}
}
