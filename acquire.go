package runpool

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/puddle/v2"
)

// Acquire borrows a connection, waiting for one within ctx. A connection
// that may have gone stale is probed first (see health.go); the caller
// never receives one that failed its probe. While the server refuses
// connections for a moment (a restart; see serverAway) it dials again
// with backoff, for at most Config.ServerAwayTimeout.
func (p *Pool[C]) Acquire(ctx context.Context) (*Conn[C], error) {
	if !p.m.timing() {
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

// acquire is Acquire without the metrics. outWhileWaited is when the connection
// was checked out (the clock read the idle check made, on the fast path: a clock
// read costs 20-60 ns on a VM's clock, a tenth of a checkout). bp reports
// that the caller met a 53300 on the way (it took part in a back-pressure
// episode).
func (p *Pool[C]) acquire(ctx context.Context) (_ *Conn[C], outWhileWaited int64, bp bool, _ error) {
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
					p.counters.notHandedOut.Add(1)
				}
				return c, now, bp, err
			}
		}
		// puddle counted a checkout that the caller did not get.
		p.counters.notHandedOut.Add(1)
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
			return &AcquireTimeoutError{Timeout: p.cfg.AcquireTimeout, WaitedFor: kind.String(), LastDialErr: p.path.lastDialError()}
		}
		if dialErr := p.path.lastDialError(); dialErr != nil {
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
