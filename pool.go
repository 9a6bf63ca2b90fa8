package runpool

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"
)

// ErrClosed is returned by Acquire on a pool that was closed or shut down.
var ErrClosed = errors.New("runpool: pool closed")

// Pool is a connection pool for connections of type C. Create it with [New];
// most users create it through an adapter instead.
type Pool[C any] struct {
	p         *puddle.Pool[*entry[C]]
	connector Connector[C]
	gone      GoneChecker[C]      // the connector, when it can tell a dead connection without I/O
	witness   InterruptWitness[C] // the connector, when it can tell an interrupted connection from a failed one
	slotter   SlotHolder[C]       // the connector, when it takes budget slots (slots.go)
	cfg       settings            // resolved once, at start (resolve.go)
	hooks     Hooks[C]

	// rules are the settings the policy's idle question reads, on every
	// checkout.
	rules idleRules
	// policy holds the trust signals and estimates, and decides what a
	// checkout does (policy.go).
	policy policy

	dialSem chan struct{}     // one token per dial in flight (MaxConcurrentDials)
	spare   atomic.Pointer[C] // the connection Open dialled, for the construct that puts it in the pool

	ender   OrphanEnder[C] // the connector's, when it has one and no pooler hides the sessions
	orphans orphans        // sessions to end at the next tick (orphans.go)

	mu sync.Mutex // guards entries
	// entries is every connection the pool holds, idle or borrowed, so a
	// drain can cancel what borrowed ones are running.
	entries map[*entry[C]]struct{}
	// held is len(entries), written under mu, for a look without it
	// (noteQuiet, at every release).
	held atomic.Int32

	draining atomic.Bool // set once Shutdown begins; releases then close
	// parking is set when the connector's callers park connections
	// (park.go); acquiring then counts callers in Acquire, whom a parked
	// connection must not keep waiting.
	parking   bool
	acquiring atomic.Int32
	waiters   atomic.Int32  // callers waiting for a connection (acquire counts them): out a 53300 (waitBackpressure) or for their turn (waitTurn)
	released  chan struct{} // wakes the drain, or a caller backing off, when a connection comes back

	// q holds the callers waiting for their turn (waitTurn), first come,
	// first served: a connection that comes back is handed to the first.
	q waitq[puddle.Resource[*entry[C]]]

	path         pathRecord
	counters     counters
	m            *metrics     // instruments (metrics.go)
	bp           backpressure // the current 53300 episode, for its log lines
	borrowedOpen atomic.Int64 // open connections beyond the fair share
	staleLog     staleLog     // what the maintainer last logged of stale discards

	said ServerWitness[C] // the connector, when it reports role changes and idle ends (failover.go)
	fo   failover         // the last demotion noticed (failover.go)

	// bg bounds the work no caller waits for (hedges, the MinConns
	// floor, the maintainer's ending of orphans): Shutdown cancels it,
	// so none holds up the drain.
	bg     context.Context
	stopBg context.CancelFunc

	closeOnce      sync.Once
	stopMaintainer chan struct{}
	yieldNow       chan struct{} // asks the maintainer's worker for yieldSlot at once
	quiet          *time.Timer   // asks it quietAfter after the pool went quiet (noteQuiet); slots on only
	maintainerDone chan struct{}
	shutdownDone   chan struct{}
	report         DrainReport // set before shutdownDone closes
}

// entry is the pool's record of one connection, the puddle resource value.
type entry[C any] struct {
	conn C
	stamps
	borrowed       bool        // opened beyond the fair share: on a lease (budget.go)
	inUse          atomic.Bool // between checkout and release
	dead           atomic.Bool // known unusable: close without a goodbye
	routine        atomic.Bool // closed for a known end of its session (failover.go): never an orphan
	since          int64       // nanotime of the checkout when metrics time it, else 0 (the borrower's)
	outWhileWaited int64       // nanotime of a checkout while callers waited, else 0 (the holder's; see checkOut)
	out            int64       // nanotime of the checkout (the borrower's): Park's stamp
	pool           *Pool[C]
	res            *puddle.Resource[*entry[C]] // puddle's record of it (set on checkout)
	// parkedBy is the handle that parked the connection, while it is
	// parked; whoever swaps it to nil (Unpark, Release, the pool taking it
	// back) owns the connection.
	parkedBy atomic.Pointer[Conn[C]]
	unparks  atomic.Int64 // checkouts by Unpark, for Stat.AcquireCount
	// conns is a slab of handles, so a checkout allocates nothing while a
	// stale *Conn from an earlier checkout stays distinguishable.
	conns []Conn[C]
}

// Config returns the pool's configuration with defaults applied.
func (p *Pool[C]) Config() Config { return p.cfg.Config }

// construct is puddle's constructor: one dial, capped in concurrency and
// bounded by DialTimeout.
func (p *Pool[C]) construct(ctx context.Context) (*entry[C], error) {
	var c C
	if spare := p.spare.Swap(nil); spare != nil {
		c = *spare
	} else {
		var err error
		if c, err = p.dialOnce(ctx); err != nil {
			return nil, err
		}
	}
	p.counters.newConns.Add(1)
	now := nanotime()
	e := &entry[C]{pool: p, conn: c, stamps: stamps{expiresAt: now + p.lifetime(), epoch: p.policy.epoch.Load(), created: now, idleSince: now}}
	if fs := p.cfg.fairShare; fs > 0 && p.p.Stat().TotalResources() > fs {
		e.borrowed = true
		p.borrowedOpen.Add(1)
	}
	p.mu.Lock()
	p.entries[e] = struct{}{}
	p.held.Store(int32(len(p.entries)))
	p.mu.Unlock()
	return e, nil
}

// onLease reports whether e, a connection the pool holds (checked out,
// or taken from the idle list), is on a lease: opened beyond the fair
// share while the pool still holds more than its share. A dial is marked
// borrowed when the pool's connections, those still opening included,
// exceed the share, so one can be marked while others fail or close; once
// the pool holds no more than its share, it joins the share, off its
// lease: closing it would take the pool below its share, and its callers
// would dial at once to replace it.
func (p *Pool[C]) onLease(e *entry[C]) bool {
	if !e.borrowed {
		return false
	}
	if p.openConns() > p.cfg.fairShare {
		return true
	}
	e.borrowed = false
	p.borrowedOpen.Add(-1)
	return false
}

// openConns is the number of the pool's open connections, those opening
// not counted.
func (p *Pool[C]) openConns() int32 {
	st := p.p.Stat()
	return st.TotalResources() - st.ConstructingResources()
}

// lifetime draws one connection's lifetime: MaxConnLifetime plus a uniform
// share of the jitter, so a cohort opened together is replaced gradually.
func (p *Pool[C]) lifetime() int64 {
	d := int64(p.cfg.MaxConnLifetime)
	if j := int64(p.cfg.MaxConnLifetimeJitter); j > 0 {
		d += rand.Int64N(j)
	}
	return d
}

// destruct is puddle's destructor. It holds the pool slot until it
// returns, so it must be quick: a dead connection is closed without
// waiting for the server.
func (p *Pool[C]) destruct(e *entry[C]) {
	p.forget(e)
	p.noteOrphan(e)
	p.connector.Close(e.conn, e.dead.Load())
}

// Stat returns a snapshot of the pool's counters.
func (p *Pool[C]) Stat() *Stat {
	s := &Stat{ps: p.p.Stat(), c: p.counters.snapshot(), fairShare: p.cfg.fairShare,
		slotWaits: p.m.slots.waitsTotal.Load(), slotsGivenBack: p.m.slots.gaveBackTotl.Load()}
	s.parked, s.unparks = p.parkedNow()
	return s
}

// Close drains the pool (see Shutdown) with Config.DrainTimeout as the
// deadline, then returns. Acquire fails with ErrClosed afterwards.
func (p *Pool[C]) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
	defer cancel()
	_, _ = p.Shutdown(ctx)
}

// sweepIdle closes idle connections past their idle time (above the
// MinConns floor), past their lifetime, or borrowed and idle borrowIdle;
// it notes the session of one it comes to late (noteOverdue).
func (p *Pool[C]) sweepIdle() {
	now := nanotime()
	total := p.p.Stat().TotalResources()
	for _, res := range p.p.AcquireAllIdle() {
		e := res.Value()
		switch {
		case now >= e.expiresAt:
			p.counters.lifetimeExpired.Add(1)
		case time.Duration(now-e.idleSince) >= p.rules.maxIdle && total > p.cfg.MinConns:
			p.counters.idleExpired.Add(1)
		case time.Duration(now-e.idleSince) >= borrowIdle && p.onLease(e):
			p.counters.borrowReturned.Add(1)
		default:
			res.ReleaseUnused()
			continue
		}
		total--
		p.noteOverdue(e, now)
		res.Destroy()
	}
}
