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
	// borrowPausedUntil (nanotime): until then a pool at its fair share
	// borrows no more (budget slots: leaseEnded).
	borrowPausedUntil atomic.Int64

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

// idleAction is what a checkout does with an idle connection.
type idleAction uint8

const (
	// idleHandOut: trusted and back in use within peekAfterIdle: hand
	// it out as is.
	idleHandOut idleAction = iota
	// idlePeek: trusted, idle a little longer: hand it out once a look
	// at its socket (the connector's Gone) finds it open.
	idlePeek
	// idleDoubt: not trusted. The caller observes the clock (a freeze it
	// reveals moves the epochs) and asks again, doubting: the answer is
	// then probe or discard.
	idleDoubt
	// idleProbe: ping it within timeout first; hedge with a dial after
	// hedge (0: no hedge).
	idleProbe
	// idleDiscard: close it unprobed, for why.
	idleDiscard
)

// unprobed reports whether the answer hands the connection out without
// a probe (idleHandOut, idlePeek): the pool trusts it.
func (d idleAction) unprobed() bool { return d <= idlePeek }

// discardReason is why an idle connection is closed unprobed.
type discardReason uint8

const (
	discardLifetime discardReason = iota // past its lifetime
	discardIdle                          // idle past MaxConnIdleTime
	discardFreeze                        // released before a freeze that outlasted the path's idle timeout
	discardCohort                        // idle since before a sibling that failed its probe
)

// idleAnswer is the policy's answer on an idle connection.
type idleAnswer struct {
	do      idleAction
	why     discardReason // for idleDiscard
	timeout time.Duration // for idleProbe: the probe's deadline
	hedge   time.Duration // for idleProbe: when a dial starts beside it, 0 for never
}

// idleRules are the settings the idle question reads.
type idleRules struct {
	probeAfter   time.Duration // ProbeAfterIdle
	maxIdle      time.Duration // MaxConnIdleTime
	probeTimeout time.Duration // ProbeTimeout
	pingTimeout  time.Duration // PingTimeout, 0 for none
	tick         time.Duration // MaintainInterval
}

// idle decides at now what a checkout does with the idle connection
// stamped c. A connection past its lifetime is discarded; a trusted one
// is handed out, after a peek once idle peekAfterIdle. Doubting (the
// caller's first answer was idleDoubt, or the ShouldPing hook wants a
// probe), one idle past MaxConnIdleTime or condemned (by a freeze, by
// its cohort) is discarded, any other probed. The trusted path costs a
// compare and two atomic loads.
func (pl *policy) idle(now int64, c *stamps, r *idleRules, doubting bool) idleAnswer {
	idle := time.Duration(now - c.idleSince)
	if now < c.expiresAt && !doubting && pl.trusted(idle, c, r.probeAfter) {
		if idle < peekAfterIdle {
			return idleAnswer{do: idleHandOut}
		}
		return idleAnswer{do: idlePeek}
	}
	return pl.untrusted(now, c, r, doubting)
}

// untrusted is idle's answer on a connection it does not hand out as
// is: discard it past its lifetime; not yet doubting, doubt it; else
// discard it when it idled past maxIdle or was condemned, and probe it
// otherwise. The probe's deadline follows the path's estimates within
// ProbeTimeout, capped by PingTimeout. A connection opened within that
// deadline (a hedged one, probed because a sibling's probe failed as it
// opened) gets no hedge of its own: it was dialled a moment ago, and its
// probe takes a round trip, which the hedge's delay may not cover.
func (pl *policy) untrusted(now int64, c *stamps, r *idleRules, doubting bool) idleAnswer {
	switch {
	case now >= c.expiresAt:
		return idleAnswer{do: idleDiscard, why: discardLifetime}
	case !doubting:
		return idleAnswer{do: idleDoubt}
	case time.Duration(now-c.idleSince) >= r.maxIdle:
		return idleAnswer{do: idleDiscard, why: discardIdle}
	case c.epoch < pl.discardEpoch.Load():
		return idleAnswer{do: idleDiscard, why: discardFreeze}
	case c.idleSince < pl.cohortCut.Load():
		return idleAnswer{do: idleDiscard, why: discardCohort}
	}
	timeout := pl.probeTimeout(r.probeTimeout)
	if r.pingTimeout > 0 {
		timeout = min(timeout, r.pingTimeout)
	}
	a := idleAnswer{do: idleProbe, timeout: timeout}
	if now-c.created >= int64(timeout) {
		a.hedge = pl.hedgeDelay(timeout)
	}
	return a
}

// trusted reports whether a connection idle for idle, stamped c, may be
// handed out without a probe: used within probeAfter, released in the
// current epoch, and no interrupted connection's verdict pending.
func (pl *policy) trusted(idle time.Duration, c *stamps, probeAfter time.Duration) bool {
	return idle < probeAfter && c.epoch == pl.epoch.Load() && pl.unsettled.Load() == 0
}

// endsOrphans reports whether orphaned sessions may be ended through a
// connection idle for idle, stamped c: one trusted without a probe, or,
// when mayProbe, one a checkout would probe and then hand out (released
// in the current epoch, so neither frozen past nor condemned, and idle
// less than maxIdle): the orphans' query is its probe. The maintainer's
// worker may probe, since a failed attempt costs no caller anything; the
// drain may not, since it costs the drain's time.
func (pl *policy) endsOrphans(idle time.Duration, c *stamps, r *idleRules, mayProbe bool) bool {
	if pl.trusted(idle, c, r.probeAfter) {
		return true
	}
	return mayProbe && idle < r.maxIdle && c.epoch == pl.epoch.Load()
}

// overdue reports whether a connection closed from idle after idle for
// idle was missed by the sweep that keeps idle connections within a tick
// of maxIdle, below the path's idle timeout (a late tick, a throttled
// CPU short of a freeze; the MinConns floor, which the sweep keeps): its
// flow may be gone, and with it the goodbye its close sends.
func (pl *policy) overdue(idle time.Duration, r *idleRules) bool {
	return idle >= r.maxIdle+r.tick
}

// dialAction is what a caller that found no idle connection does.
type dialAction uint8

const (
	// dialNow: open a connection.
	dialNow dialAction = iota
	// awaitContention: the server is full and a dial would take the pool
	// beyond its fair share: wait for one of the pool's own connections
	// to come back, until the contention ends (until).
	awaitContention
	// awaitReturn: a connection in use comes back sooner than a dial
	// would serve: wait for one, and dial once until passes.
	awaitReturn
	// awaitDialSlot: every dial slot (MaxConcurrentDials) is taken: wait
	// for a turn, or for a connection coming back meanwhile.
	awaitDialSlot
)

// dialAnswer is the policy's answer to a caller that found no idle
// connection.
type dialAnswer struct {
	do    dialAction
	until int64 // nanotime, for awaitContention and awaitReturn
}

// dialFacts are what dialOrWait weighs, read just before it is asked.
type dialFacts struct {
	total     int32 // connections open or opening, the caller's own included
	busy      int32 // connections in use
	waiting   int32 // callers waiting for a connection, the caller included
	fairShare int32 // the pool's share of the server's budget, 0 for none
	slack     int32 // connections beyond the fair share a contended pool keeps (budget slots: slotSlack)
	// patienceSpent: the caller waited returnPatience dials' time for a
	// returning connection in vain.
	patienceSpent bool
	slotFree      bool // a dial slot is free
}

// dialOrWait decides at now whether a caller that found no idle
// connection dials, and what it waits for if not.
//
// While a recent 53300 says the server is full, a pool beyond its fair
// share dials no more: borrowing stops, and borrowed connections are
// closed as they come back, so that the slots go to the instances below
// their share, which back off between dials, instead of back to the
// borrower, whose callers would dial again the moment a lease ended.
//
// Otherwise a caller waits for a returning connection when that beats a
// dial (returnBeatsDial), unless it has waited its patience out; then it
// dials when a dial slot is free.
func (pl *policy) dialOrWait(now int64, f dialFacts) dialAnswer {
	if until := pl.contendedUntil.Load(); f.fairShare > 0 && now < until && f.total > f.fairShare+f.slack {
		return dialAnswer{do: awaitContention, until: until}
	}
	if until := pl.borrowPausedUntil.Load(); f.fairShare > 0 && now < until && f.total > f.fairShare {
		return dialAnswer{do: awaitContention, until: until}
	}
	if !f.patienceSpent && pl.returnBeatsDial(now, f.busy, f.waiting) {
		return dialAnswer{do: awaitReturn, until: now + returnPatience*pl.dialNanos.Load()}
	}
	if !f.slotFree {
		return dialAnswer{do: awaitDialSlot}
	}
	return dialAnswer{do: dialNow}
}

// returnPatience is how many dials' time a caller would rather wait for
// a returning connection than dial: returnBeatsDial holds a dial back
// while the waiting callers' turns come within it, and a caller held back
// dials anyway once it has waited that long. Both use the same figure, so
// that a caller does not give up just before the turn it was held back
// for.
//
// A dial costs more than its time: the server starts a backend, whose
// CPU the queries in flight need, and the new connection's first query
// warms its catalog caches. Counted at one dial's time, a burst after a
// freeze opens more connections than it needs and its slowest requests
// wait for them.
const returnPatience = 2

// returnBeatsDial estimates whether the waiting callers are served by
// the busy borrowed connections coming back within returnPatience dials'
// time: each borrowed one serves a caller every useNanos, a dial takes
// dialNanos. A burst of short queries is then served by a few
// connections instead of a dial per caller. A dial estimate older than
// estimateFresh holds back no dial.
func (pl *policy) returnBeatsDial(now int64, busy, waiting int32) bool {
	use, dial := pl.useNanos.Load(), pl.dialNanos.Load()
	if use == 0 || dial == 0 || now-pl.dialAt.Load() > int64(estimateFresh) || busy == 0 {
		return false
	}
	return use*int64(waiting)/int64(busy) < returnPatience*dial
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
