package runpool

import (
	"time"

	"github.com/jackc/puddle/v2"
)

// Stat is a snapshot of a pool's state and counters. Its methods carry the
// names of pgxpool.Stat's, so code that reads one reads the other, plus
// runpool's own counts of what only it does.
type Stat struct {
	ps *puddle.Stat
	c  counterSnapshot
	// parked connections are idle to the pool but borrowed to puddle;
	// unparks are checkouts puddle did not see (park.go).
	parked    int32
	unparks   int64
	fairShare int32

	slotWaits, slotsGivenBack int64 // budget slots (slots.go)
}

// AcquireCount is the number of successful acquires from the pool, as
// pgxpool counts them: connections handed to a caller. A connection
// closed on checkout (stale, past its lifetime, failed its probe,
// rejected by PrepareConn) while the caller waits for another does not
// count. Checkouts by Conn.Unpark count too.
func (s *Stat) AcquireCount() int64 {
	return s.ps.AcquireCount() + s.c.handedOver - s.c.notHandedOut + s.unparks
}

// AcquireDuration is the total time spent in successful acquires.
func (s *Stat) AcquireDuration() time.Duration { return s.ps.AcquireDuration() }

// AcquiredConns is the number of connections borrowed now. A connection
// being closed counts until its close completes, as in pgxpool: its slot
// is not free before.
func (s *Stat) AcquiredConns() int32 { return s.ps.AcquiredResources() - s.parked }

// CanceledAcquireCount is the number of acquires that failed because
// their context ended while they waited: for a free connection, a dial,
// their turn to dial, a connection coming back, or a server that refused
// connections (53300) to take more.
func (s *Stat) CanceledAcquireCount() int64 { return s.c.canceledAcquires }

// ConstructingConns is the number of connections being opened now.
func (s *Stat) ConstructingConns() int32 { return s.ps.ConstructingResources() }

// EmptyAcquireCount is the number of acquires that found no idle
// connection and had to wait for one or for a dial.
func (s *Stat) EmptyAcquireCount() int64 { return s.ps.EmptyAcquireCount() }

// EmptyAcquireWaitTime is the total time those acquires waited.
func (s *Stat) EmptyAcquireWaitTime() time.Duration { return s.ps.EmptyAcquireWaitTime() }

// IdleConns is the number of idle connections now, parked ones
// (Conn.Park) included.
func (s *Stat) IdleConns() int32 { return s.ps.IdleResources() + s.parked }

// MaxConns is the most connections the pool may hold.
func (s *Stat) MaxConns() int32 { return s.ps.MaxResources() }

// FairShare is this instance's share of the budget when it may borrow
// beyond it, up to MaxConns (the server enforces the budget), else 0.
func (s *Stat) FairShare() int32 { return s.fairShare }

// SlotWaitCount is the number of dials refused because every budget slot
// was held (RUNPOOL_BUDGET_SLOTS=advisory).
func (s *Stat) SlotWaitCount() int64 { return s.slotWaits }

// SlotsGivenBackCount is the number of borrowed connections closed on
// release before their lease ended because the budget slots were full.
func (s *Stat) SlotsGivenBackCount() int64 { return s.slotsGivenBack }

// TotalConns is the number of connections held now: idle, borrowed,
// being opened and being closed.
func (s *Stat) TotalConns() int32 { return s.ps.TotalResources() }

// NewConnsCount is the number of connections opened since the pool began.
func (s *Stat) NewConnsCount() int64 { return s.c.newConns }

// MaxLifetimeDestroyCount is the number of connections closed because
// they outlived their (jittered) MaxConnLifetime.
func (s *Stat) MaxLifetimeDestroyCount() int64 { return s.c.lifetimeExpired }

// MaxIdleDestroyCount is the number of connections closed because they
// stayed idle for MaxConnIdleTime.
func (s *Stat) MaxIdleDestroyCount() int64 { return s.c.idleExpired }

// BrokenOnReleaseCount is the number of connections closed on release
// because they were broken, busy or inside a transaction.
func (s *Stat) BrokenOnReleaseCount() int64 { return s.c.brokenOnRelease }

// ProbeCount is the number of checkout probes run.
func (s *Stat) ProbeCount() int64 { return s.c.probes }

// ProbeFailureCount is the number of checkout probes that failed.
func (s *Stat) ProbeFailureCount() int64 { return s.c.probeFailures }

// StaleDiscardCount is the number of connections discarded on checkout as
// stale, after a failed probe or a freeze.
func (s *Stat) StaleDiscardCount() int64 { return s.c.staleDiscarded }

// FreezeCount is the number of freezes of the process the pool noticed.
func (s *Stat) FreezeCount() int64 { return s.c.freezes }

// BackoffCount is the number of times a dial met 53300 (too many
// connections) and waited before trying again.
func (s *Stat) BackoffCount() int64 { return s.c.backoffs }

// BorrowReturnedCount is the number of connections opened beyond the fair
// share that were given back (lease over, or idle).
func (s *Stat) BorrowReturnedCount() int64 { return s.c.borrowReturned }

// AcquireTimeoutCount is the number of acquires that failed because the
// caller's deadline passed (db.client.connection.timeouts).
func (s *Stat) AcquireTimeoutCount() int64 { return s.c.timeouts }

// DialFailureCount is the number of connection attempts that failed,
// 53300 refusals included.
func (s *Stat) DialFailureCount() int64 { return s.c.dialFailures }

// HedgedDialCount is the number of connections opened in the background
// because a checkout probe was slow to answer (see health.go).
func (s *Stat) HedgedDialCount() int64 { return s.c.hedgedDials }

// OrphansEndedCount is the number of server sessions the pool ended
// (pg_terminate_backend) after giving up their connections as dead: left
// behind a NAT that forgot the flow, they would hold their slots until the
// server's own timeouts (orphans.go).
func (s *Stat) OrphansEndedCount() int64 { return s.c.orphansEnded }
