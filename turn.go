package runpool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/puddle/v2"
)

// backpressureTimeout bounds how long the first dial keeps retrying a
// server that answers 53300.
const backpressureTimeout = 30 * time.Second

// errDialBusy is construct's answer when every dial token is taken. It
// never reaches a caller: Acquire then waits for its turn (waitTurn).
var errDialBusy = errors.New("runpool: every dial token is in use")

// errComesBack is construct's answer when a busy connection will likely
// come back within comesBackPatience dials' time (comesBackSooner).
// Acquire then waits for its turn, for at most that long, and dials after
// that.
var errComesBack = errors.New("runpool: a connection comes back sooner than a dial would serve")

// errContended is construct's answer when a dial would take the pool
// beyond its fair share while the server is full (contended). Acquire
// then waits for one of the pool's own connections to come back, until
// the contention ends.
var errContended = errors.New("runpool: the server is full and the pool holds its fair share")

// contended reports that a dial now would take the pool beyond its fair
// share while a recent 53300 says the server is full. Borrowing then
// stops, and borrowed connections are closed as they come back, so that
// the slots go to the instances below their share, which back off
// between dials, instead of back to the borrower, whose callers would
// dial again the moment a lease ended. (Without it, in a scale-out where
// every instance is busy, the first instances to dial held half the
// budget each while the last ones waited out 53300.)
func (p *Pool[C]) contended() bool {
	fs := p.cfg.fairShare
	return fs > 0 && p.policy.contended(nanotime()) && p.p.Stat().TotalResources() > fs
}

// contendedFor is how long the contention lasts from now.
func (p *Pool[C]) contendedFor() time.Duration {
	return time.Duration(p.policy.contendedUntil.Load() - nanotime())
}

// mustDial marks the context of a caller that waited comesBackPatience
// dials' time for a returning connection in vain: its construct dials.
type mustDial struct{}

// counted marks the context of a caller counted in p.waiters (acquire),
// so that comesBackSooner does not count it twice.
type counted struct{}

// comesBackPatience is how many dials' time a caller would rather wait
// for a returning connection than dial: comesBackSooner holds a dial
// back while the waiting callers' turns come within it, and a caller held
// back dials anyway once it has waited that long. Both use the same
// figure, so that a caller does not give up just before the turn it was
// held back for.
//
// A dial costs more than its time: the server starts a backend, whose
// CPU the queries in flight need, and the new connection's first query
// warms its catalog caches. Counted at one dial's time, a burst after a
// freeze opens more connections than it needs and its slowest requests
// wait for them.
const comesBackPatience = 2

// comesBackSooner estimates whether the callers waiting, this one
// included, are served by the borrowed connections coming back within
// comesBackPatience dials' time: each borrowed one serves a caller every
// useNanos, a dial takes dialNanos. A burst of short queries is then
// served by a few connections instead of a dial per caller.
func (p *Pool[C]) comesBackSooner(ctx context.Context) bool {
	use, dial := p.policy.useNanos.Load(), p.policy.dialNanos.Load()
	if use == 0 || dial == 0 || nanotime()-p.policy.dialAt.Load() > int64(estimateFresh) {
		return false
	}
	busy := int64(p.p.Stat().AcquiredResources())
	if busy == 0 {
		return false
	}
	waiting := int64(p.waiters.Load())
	if ctx.Value(counted{}) == nil {
		waiting++
	}
	return use*waiting/busy < comesBackPatience*dial
}

// waitRecheck bounds a caller's wait between looks when it waits for a
// connection to come back (errComesBack, errContended) rather than for a
// dial token: a connection closed instead of returned (a failed probe,
// broken, past its lifetime) wakes nobody, and the caller may then be
// free to dial. Without the look, a caller told one comes back slept out
// its whole patience, which a slow dial under load stretches (once, in
// CI, every request of a burst after a freeze waited 1.9 s, then all
// were served at once). It looks only whether any connection is still
// borrowed: re-estimating between wakes made it dial mid-burst, where a
// wake would have handed it a returned connection.
const waitRecheck = 50 * time.Millisecond

// dialOnce dials holding one of MaxConcurrentDials tokens, or fails with
// errDialBusy at once when none is free: a caller waiting for a token
// would be bound to its own dial, while a connection another caller
// returns meanwhile could serve it sooner (after a freeze, a burst is
// served by the first fresh connections as they free up).
func (p *Pool[C]) dialOnce(ctx context.Context) (C, error) {
	if p.contended() {
		var zero C
		return zero, errContended
	}
	if ctx.Value(mustDial{}) == nil && p.comesBackSooner(ctx) {
		var zero C
		return zero, errComesBack
	}
	select {
	case p.dialSem <- struct{}{}:
	default:
		var zero C
		return zero, errDialBusy
	}
	defer func() {
		<-p.dialSem
		if p.waiters.Load() > 0 {
			p.wakeAll()
		}
	}()
	start := time.Now()
	c, err := p.dial(ctx)
	took := time.Since(start)
	p.m.dialed(took, err)
	if err != nil {
		p.counters.dialFailures.Add(1)
		p.health.dialFailed(err)
		p.dialsFailing(err)
		if tooManyConnections(err) && p.cfg.fairShare > 0 {
			p.policy.serverFull(nanotime())
		}
		return c, err
	}
	p.policy.dialTook(took)
	p.health.dialSucceeded()
	p.dialsSucceedAgain()
	return c, nil
}

// waitBackpressure waits out a 53300 (the server is full) before the
// caller tries again: a jittered, growing pause, cut short when one of the
// pool's own connections comes back, since that one can serve the caller
// at once. It reports false when ctx ends first.
func (p *Pool[C]) waitBackpressure(ctx context.Context, attempt int) bool {
	p.counters.backoffs.Add(1)
	p.m.backoffs.Add(context.Background(), 1, p.m.add...)
	t := time.NewTimer(backoff(attempt))
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.released:
	case <-ctx.Done():
		return false
	}
	return true
}

func (p *Pool[C]) wake() {
	select {
	case p.released <- struct{}{}:
	default:
	}
}

// wakeAll wakes one caller backing off and every caller waiting for its
// turn (a dial ended, slots freed, the pool closes): each tries again,
// and keeps its place if it waits again.
func (p *Pool[C]) wakeAll() {
	p.wake()
	p.q.wakeAll()
}

// waitTurn parks a caller that found no idle connection and no free dial
// token, at its place in the queue, until a connection comes back (handed
// to it in its turn: returned as res), a dial ends or the pool closes; the
// caller then tries again. With limit > 0 (errComesBack, errContended) a
// free token does not end the wait, but limit does. It reports whether it
// was woken (or found an idle connection or a free token at once) rather
// than reaching limit.
func (p *Pool[C]) waitTurn(ctx context.Context, limit time.Duration, w *waiter[puddle.Resource[*entry[C]]]) (res *puddle.Resource[*entry[C]], woke bool, _ error) {
	p.q.push(w)
	// What came back or ended before it queued woke nobody.
	if (limit == 0 && len(p.dialSem) < cap(p.dialSem)) || p.p.Stat().IdleResources() > 0 {
		if p.q.remove(w) {
			return nil, true, nil
		}
		return <-w.ch, true, nil
	}
	var expired <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	select {
	case res := <-w.ch:
		return res, true, nil
	case <-expired:
		if p.q.remove(w) {
			return nil, false, nil
		}
		return <-w.ch, true, nil
	case <-ctx.Done():
		if !p.q.remove(w) {
			if res := <-w.ch; res != nil {
				p.passOn(res)
			}
		}
		return nil, false, ctx.Err()
	}
}

// dialBackoff is Open's first dial: it treats 53300 (too many
// connections) as back-pressure, waiting with jittered exponential backoff
// and trying again until ctx ends or backpressureTimeout passes.
func (p *Pool[C]) dialBackoff(ctx context.Context) (C, error) {
	var zero C
	var giveUp, begun time.Time
	ended := func(served bool) {
		if !begun.IsZero() {
			p.cfg.Logger.Info("runpool: back-pressure ended", "pool", p.cfg.Name, "phase", "open",
				"duration", time.Since(begun).Round(time.Millisecond), "backoffs", p.counters.backoffs.Load(),
				"served", served)
		}
	}
	for attempt := 0; ; attempt++ {
		select {
		case p.dialSem <- struct{}{}:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
		start := time.Now()
		c, err := p.dial(ctx)
		<-p.dialSem
		took := time.Since(start)
		p.m.dialed(took, err)
		if err == nil {
			p.policy.dialTook(took)
			p.health.dialSucceeded()
			ended(true)
			return c, nil
		}
		p.counters.dialFailures.Add(1)
		p.health.dialFailed(err)
		if !tooManyConnections(err) {
			ended(false)
			return zero, err
		}
		if attempt == 0 {
			giveUp = time.Now().Add(backpressureTimeout)
			begun = time.Now()
			p.cfg.Logger.Info("runpool: back-pressure begun: the server is full (53300), retrying the first connection",
				"pool", p.cfg.Name, "phase", "open", "give_up_after", backpressureTimeout)
		}
		p.counters.backoffs.Add(1)
		p.m.backoffs.Add(context.Background(), 1, p.m.add...)
		wait := backoff(attempt)
		if time.Now().Add(wait).After(giveUp) {
			ended(false)
			return zero, err
		}
		if !sleepCtx(ctx, wait) {
			ended(false)
			return zero, ctx.Err()
		}
	}
}

// dial opens and initialises one connection within DialTimeout.
func (p *Pool[C]) dial(ctx context.Context) (C, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	c, err := p.connector.Connect(ctx)
	if err != nil {
		return c, err
	}
	if p.hooks.AfterConnect != nil {
		if err := p.hooks.AfterConnect(ctx, c); err != nil {
			p.connector.Close(c, false)
			var zero C
			return zero, fmt.Errorf("runpool: AfterConnect: %w", err)
		}
	}
	return c, nil
}
