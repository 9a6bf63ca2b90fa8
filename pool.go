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
	cfg       Config              // defaults applied, MaxConns resolved
	hooks     Hooks[C]

	// Read on every checkout.
	probeAfter time.Duration
	maxIdle    time.Duration
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

	health   health
	counters counters
	m        *metrics     // instruments (metrics.go)
	bp       backpressure // the current 53300 episode, for its log lines
	lentOpen atomic.Int64 // open connections beyond the fair share
	staleLog staleLog     // what the maintainer last logged of stale discards

	said ServerWitness[C] // the connector, when it reports role changes and idle ends (failover.go)
	fo   failover         // the last demotion noticed (failover.go)

	// bg bounds the dials no caller waits for (hedges, the MinConns
	// floor): Shutdown cancels it, so none holds up the drain.
	bg     context.Context
	stopBg context.CancelFunc

	closeOnce      sync.Once
	stopMaintainer chan struct{}
	maintainerDone chan struct{}
	shutdownDone   chan struct{}
	report         DrainReport // set before shutdownDone closes
}

// Hooks run at named moments of a connection's life. Each is optional.
// Park and Unpark (park.go) run none of the checkout and release hooks: a
// parked connection stays with its holder.
type Hooks[C any] struct {
	// AfterConnect runs on every new connection before first use; an
	// error discards the connection and fails the dial.
	AfterConnect func(ctx context.Context, c C) error
	// ShouldPing runs on an Acquire of a connection the pool would hand
	// out without a probe (idle is how long it was idle); true has it
	// probed first. It cannot waive a probe the pool's own checks call
	// for.
	ShouldPing func(ctx context.Context, c C, idle time.Duration) bool
	// PrepareConn runs on checkout (Acquire, AcquireAllIdle) after the
	// pool's checks, last before the caller gets the connection. ok false
	// closes it; with a nil error Acquire then takes another, and fails
	// after MaxConns rejections in a row. An error fails the checkout,
	// with the connection back in the pool when ok is true.
	PrepareConn func(ctx context.Context, c C) (ok bool, err error)
	// OnRelease runs as Release begins, for every connection released.
	OnRelease func(c C)
	// AfterRelease runs, in its own goroutine, on a connection Release
	// would keep, before it goes back to the idle list: false closes it
	// instead.
	AfterRelease func(c C) bool
}

// entry is the pool's record of one connection, the puddle resource value.
type entry[C any] struct {
	conn C
	stamps
	lent     bool        // opened beyond the fair share: on a lease (budget.go)
	borrowed atomic.Bool // between checkout and release
	dead     atomic.Bool // known unusable: close without a goodbye
	routine  atomic.Bool // closed for a known end of its session (failover.go): never an orphan
	since    int64       // nanotime of the checkout when metrics time it, else 0 (the borrower's)
	lentAt   int64       // nanotime of a checkout while callers waited, else 0 (the borrower's; see lend)
	out      int64       // nanotime of the checkout (the borrower's): Park's stamp
	pool     *Pool[C]
	res      *puddle.Resource[*entry[C]] // puddle's record of it (set on checkout)
	// parkedBy is the handle that parked the connection, while it is
	// parked; whoever swaps it to nil (Unpark, Release, the pool taking it
	// back) owns the connection.
	parkedBy atomic.Pointer[Conn[C]]
	unparks  atomic.Int64 // checkouts by Unpark, for Stat.AcquireCount
	// conns is a slab of handles, so a checkout allocates nothing while a
	// stale *Conn from an earlier checkout stays distinguishable.
	conns []Conn[C]
}

// Conn is a connection borrowed from a Pool. Release it exactly once.
type Conn[C any] struct {
	e      *entry[C] // nil once released
	parked bool      // Park left the connection here (park.go)
}

// Config returns the pool's configuration with defaults applied.
func (p *Pool[C]) Config() Config { return p.cfg }

// Acquire borrows a connection, waiting for one within ctx. A connection
// that may have gone stale is probed first (see health.go); the caller
// never receives one that failed its probe. While the server refuses
// connections for a moment (a restart; see serverAway) it dials again
// with backoff, for at most Config.ServerAwayTimeout.
func (p *Pool[C]) Acquire(ctx context.Context) (*Conn[C], error) {
	if !p.m.timing(ctx) {
		c, _, bp, err := p.acquire(ctx)
		if bp {
			p.backpressureLeft(err == nil)
		}
		return c, err
	}
	start := nanotime()
	p.m.pending.Add(1)
	c, now, bp, err := p.acquire(ctx)
	p.m.pending.Add(-1)
	if bp {
		p.backpressureLeft(err == nil)
	}
	if err != nil {
		return nil, err
	}
	c.e.since = now
	p.m.waitTime.Record(ctx, nanosToSeconds(now-start), p.m.rec...)
	return c, nil
}

// acquire is Acquire without the metrics. lentAt is when the connection
// was lent (the clock read the idle check made, on the fast path: a clock
// read costs 20-60 ns on a VM's clock, a tenth of a checkout). bp reports
// that the caller met a 53300 on the way (it took part in a back-pressure
// episode).
func (p *Pool[C]) acquire(ctx context.Context) (_ *Conn[C], lentAt int64, bp bool, _ error) {
	if p.parking {
		// Before puddle's Acquire, which on a full pool blocks inside
		// puddle, where no parked connection would be taken back.
		p.acquiring.Add(1)
		defer p.acquiring.Add(-1)
		p.takeParked()
	}
	if p.cfg.AcquireTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, p.cfg.AcquireTimeout, errAcquireWait)
		defer cancel()
	}
	var dialBy int64        // nanotime when a caller told to wait for a returning connection dials anyway
	var awayUntil time.Time // while the server is away (serverAway), when this caller stops waiting for it
	var rejected int        // connections the PrepareConn hook rejected
	// waiting: the caller is counted in p.waiters. It stays counted from
	// its first wait until puddle hands it a connection or it gives up,
	// across the retries between waits: a connection kept for it (a
	// release during a drain, neededInDrain) is then not closed as kept
	// for nobody while it is on its way from a wake to puddle's Acquire.
	var waiting bool
	var place *waiter[puddle.Resource[*entry[C]]] // its place among the callers waiting for their turn
	var handed *puddle.Resource[*entry[C]]        // a connection that came back, handed to it in its turn
	for attempt := 0; ; {
		var res *puddle.Resource[*entry[C]]
		var err error
		if handed != nil {
			res, handed = handed, nil
		} else {
			res, err = p.p.Acquire(ctx)
		}
		if err == nil && waiting {
			waiting = false
			p.waiters.Add(-1)
		}
		if err != nil {
			var held dialHeld
			isHeld := errors.As(err, &held)
			if !waiting && (isHeld || tooManyConnections(err)) {
				waiting = true
				p.waiters.Add(1)
				ctx = context.WithValue(ctx, waitingCaller{}, true)
				if place == nil {
					place = p.q.newWaiter()
				}
			}
			if isHeld {
				if held.do == awaitReturn {
					if dialBy == 0 {
						dialBy = held.until
					}
					if nanotime() >= dialBy {
						ctx = context.WithValue(ctx, patienceSpent{}, true)
						continue
					}
				}
				if handed, err = p.waitInsteadOfDial(ctx, dialAnswer(held), dialBy, place); err != nil {
					return nil, 0, bp, p.acquireError(ctx, err, waiting, held.do.waitKind())
				}
				continue
			}
			if tooManyConnections(err) {
				if !bp {
					bp = true
					p.backpressureBegun()
				}
				if p.waitBackpressure(ctx, attempt) {
					attempt++
					continue
				}
			}
			if serverAway(err) && p.cfg.ServerAwayTimeout > 0 {
				if awayUntil.IsZero() {
					awayUntil = time.Now().Add(p.cfg.ServerAwayTimeout)
				}
				// Its own timer, not waitTurn: while the server is away
				// every dial ends at once, refused, and would wake it.
				if wait := min(backoff(attempt), time.Until(awayUntil)); wait > 0 && sleepCtx(ctx, wait) {
					attempt++
					continue
				}
			}
			return nil, 0, bp, p.acquireError(ctx, err, waiting, waitUnknown)
		}
		e := res.Value()
		if now, ok := p.inspect(ctx, res, e, true); ok {
			if c, err := p.handOut(ctx, res, e, now, &rejected); c != nil || err != nil {
				if c == nil {
					p.counters.notLent.Add(1)
				}
				return c, now, bp, err
			}
		}
		// puddle counted a checkout that the caller did not get.
		p.counters.notLent.Add(1)
		if err := ctx.Err(); err != nil {
			return nil, 0, bp, p.acquireError(ctx, err, false, waitProbe)
		}
	}
}

// acquireError is the error an acquire fails with; waiting says the
// caller is still counted in p.waiters, which it leaves here, and kind
// what it waited for (waitUnknown: puddle's Acquire failed with err).
func (p *Pool[C]) acquireError(ctx context.Context, err error, waiting bool, kind waitKind) error {
	if waiting {
		p.waiters.Add(-1)
	}
	if errors.Is(err, puddle.ErrClosedPool) {
		return ErrClosed
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		p.counters.canceledAcquires.Add(1)
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			p.counters.timeouts.Add(1)
			p.m.timeouts.Add(context.Background(), 1, p.m.add...)
		}
		if context.Cause(ctx) == errAcquireWait {
			if kind == waitUnknown {
				kind = p.waitedIn(err)
			}
			return &AcquireTimeoutError{Timeout: p.cfg.AcquireTimeout, WaitedFor: kind.String(), LastDialErr: p.health.lastDialError()}
		}
		if dialErr := p.health.lastDialError(); dialErr != nil {
			return &AcquireError{Err: ctxErr, LastDialErr: dialErr}
		}
		return ctxErr
	}
	return err
}

// AcquireError is returned when the caller's context ended while the pool
// could not open a connection; it wraps both causes.
type AcquireError struct {
	Err         error // the context's error
	LastDialErr error // the last failed dial's error
}

func (e *AcquireError) Error() string {
	return "runpool: acquire: " + e.Err.Error() + " (last dial failed: " + e.LastDialErr.Error() + ")"
}

// Unwrap returns both causes, for errors.Is and errors.As.
func (e *AcquireError) Unwrap() []error { return []error{e.Err, e.LastDialErr} }

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
	}
}

// passOn returns a connection handed to a caller that gave up meanwhile:
// to the next caller in line, or to the idle list.
func (p *Pool[C]) passOn(res *puddle.Resource[*entry[C]]) {
	p.counters.notLent.Add(1)
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
	if e.lentAt != 0 {
		p.policy.useTook(time.Duration(now - e.lentAt))
		e.lentAt = 0
	}
	e.borrowed.Store(false)
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
	if e.lent && (now-e.created >= int64(borrowLease) || p.policy.contended(now)) {
		p.counters.borrowReturned.Add(1)
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
	e.borrowed.Store(false)
	e.dead.Store(true)
	p.destroy(e.res)
}

func (p *Pool[C]) destroy(res *puddle.Resource[*entry[C]]) {
	res.Destroy()
	if p.isDraining() {
		p.afterDrainRelease()
	}
}

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
		e.lent = true
		p.lentOpen.Add(1)
	}
	p.mu.Lock()
	p.entries[e] = struct{}{}
	p.mu.Unlock()
	return e, nil
}

// lend hands a checked connection to its caller. While callers wait for
// a connection it notes when, so that Release can time the use
// (the policy's useNanos) that tells whether waiting beats dialing.
func (p *Pool[C]) lend(res *puddle.Resource[*entry[C]], e *entry[C], now int64) *Conn[C] {
	e.res = res
	p.markLent(e, now)
	return e.handle()
}

// markLent notes a checkout at now (lend, Unpark).
func (p *Pool[C]) markLent(e *entry[C], now int64) {
	e.borrowed.Store(true)
	e.out = now
	if p.waiters.Load() > 0 {
		e.lentAt = now
	}
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
	s := &Stat{ps: p.p.Stat(), c: p.counters.snapshot()}
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
// MinConns floor) or past their lifetime.
func (p *Pool[C]) sweepIdle() {
	now := nanotime()
	total := p.p.Stat().TotalResources()
	for _, res := range p.p.AcquireAllIdle() {
		e := res.Value()
		switch {
		case now >= e.expiresAt:
			p.counters.lifetimeExpired.Add(1)
			total--
			res.Destroy()
		case time.Duration(now-e.idleSince) >= p.maxIdle && total > p.cfg.MinConns:
			p.counters.idleExpired.Add(1)
			total--
			res.Destroy()
		case e.lent && time.Duration(now-e.idleSince) >= borrowIdle:
			p.counters.borrowReturned.Add(1)
			total--
			res.Destroy()
		default:
			res.ReleaseUnused()
		}
	}
}
