package runpool

import (
	"sync/atomic"
	"time"
)

// policy decides what a checkout does. It owns the pool's trust signals
// (the trust epochs, the cohort cut-off, the interrupted connections
// awaiting a verdict, the contention deadline) and its estimates. The
// mechanism (acquire, construct, the probes of health.go) moves the
// signals as things happen and acts on the policy's answers; the policy
// reads no clock of its own: each answer is for the now its caller
// passes.
type policy struct {
	// epoch is the trust epoch: it moves on at each sign of trouble on
	// the path (a freeze, a connection found dead). A connection released
	// in an earlier epoch is not trusted without a probe: its siblings
	// shared its path and its idle time.
	epoch atomic.Int64
	// discardEpoch: a connection released in an epoch before it is
	// discarded without a probe (a freeze outlasted the path's idle
	// timeout: every connection idle then is dead).
	discardEpoch atomic.Int64
	// cohortCut (nanotime): a connection idle since before it is
	// discarded without a probe (a sibling that idled less failed its
	// probe).
	cohortCut atomic.Int64
	// unsettled counts interrupted connections whose verdict is pending
	// (settleInterrupted): meanwhile the path is in doubt.
	unsettled atomic.Int32
	// contendedUntil (nanotime) is when the last 53300 a dial met stops
	// holding the pool to its fair share (see dialOrWait).
	contendedUntil atomic.Int64

	estimates // how long a dial, a round trip and a borrow take (estimates.go)
}

// contentionHold is how long a dial's 53300 holds the pool to its fair
// share, as long as a borrowed connection's lease.
const contentionHold = borrowLease

// serverFull notes a 53300 met at now by a pool that has a fair share:
// for contentionHold the pool keeps to it.
func (pl *policy) serverFull(now int64) { pl.contendedUntil.Store(now + int64(contentionHold)) }

// contended reports whether a 53300 still holds the pool to its fair
// share at now.
func (pl *policy) contended(now int64) bool { return now < pl.contendedUntil.Load() }

// stamps are what the policy knows of one connection.
type stamps struct {
	expiresAt int64 // nanotime at which its (jittered) lifetime ends
	epoch     int64 // the trust epoch when last released (written before puddle's release, read after its acquire)
	created   int64 // nanotime when opened
	idleSince int64 // nanotime when last released (or opened); puddle's stamp is not kept (ReleaseUnused)
}

// trusted reports whether a connection idle for idle, stamped c, may be
// handed out without a probe: used within probeAfter, released in the
// current epoch, and no interrupted connection's verdict pending. It
// costs two atomic loads.
func (pl *policy) trusted(idle time.Duration, c *stamps, probeAfter time.Duration) bool {
	return idle < probeAfter && c.epoch == pl.epoch.Load() && pl.unsettled.Load() == 0
}

// distrust begins a new trust epoch on a sign of trouble on the path (a
// connection found dead or broken, an interrupted one the server did not
// answer): every connection idle now must prove itself.
func (pl *policy) distrust() { pl.epoch.Add(1) }

// condemnCohort follows a failed probe of a connection idle since last:
// the connections that idled longer are discarded unprobed, and the
// others must prove themselves.
func (pl *policy) condemnCohort(last int64) {
	raise(&pl.cohortCut, last)
	pl.epoch.Add(1)
}

// froze follows a freeze of the process for frozen: every connection
// idle now must prove itself, and when the freeze outlasted the path's
// idle timeout (pathIdle, 0 for none known) it is discarded unprobed,
// which froze reports.
func (pl *policy) froze(frozen, pathIdle time.Duration) (discard bool) {
	e := pl.epoch.Add(1)
	if pathIdle > 0 && frozen >= pathIdle {
		raise(&pl.discardEpoch, e)
		return true
	}
	return false
}

// raise sets v to at least x.
func raise(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if old >= x || v.CompareAndSwap(old, x) {
			return
		}
	}
}
