package runpool

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"
)

// backpressureTimeout bounds how long the first dial keeps retrying a
// server that answers 53300.
const backpressureTimeout = 30 * time.Second

// dialHeld is construct's error when the policy holds a dial back
// (dialOrWait). It never reaches a caller: acquire waits as the answer
// says (waitInsteadOfDial) and tries again.
type dialHeld dialAnswer

func (h dialHeld) Error() string {
	switch h.do {
	case awaitContention:
		return "runpool: the server is full and the pool holds its fair share"
	case awaitReturn:
		return "runpool: a connection comes back sooner than a dial would serve"
	}
	return "runpool: every dial slot is in use"
}

// waitKind is what a caller held back waits for, for AcquireTimeoutError.
func (a dialAction) waitKind() waitKind {
	if a == awaitDialSlot {
		return waitDialTurn
	}
	return waitInUse
}

// waitingCaller marks the context of a caller counted in p.waiters
// (acquire), so that dialFacts does not count it twice.
type waitingCaller struct{}

// intoPool is the context key of a dial no caller waits for (a hedge,
// the MinConns floor): its connection goes into the pool idle. Its value
// is an *intoPoolDial.
type intoPool struct{}

// intoPoolDial is what a dial into the pool tells createIntoPool: whether
// it took a dial token, which it leaves to createIntoPool to give back.
type intoPoolDial struct{ holdsToken atomic.Bool }

// createIntoPool opens one connection into the pool, idle, within
// DialTimeout, counts it in opened (when not nil) and wakes the callers
// waiting meanwhile once it is there. It reports whether it opened one.
//
// The dial token is given back only once the connection is in the idle
// list: a caller that found it free before would see no idle connection
// yet, and dial one more of its own.
func (p *Pool[C]) createIntoPool(opened *atomic.Int64) bool {
	d := &intoPoolDial{}
	ctx, cancel := context.WithTimeout(context.WithValue(p.bg, intoPool{}, d), p.cfg.DialTimeout)
	defer cancel()
	err := p.p.CreateResource(ctx)
	held := d.holdsToken.Load()
	if held {
		<-p.dialSem
	}
	if err == nil && opened != nil {
		opened.Add(1)
	}
	if p.waiters.Load() > 0 && (err == nil || held) {
		p.wakeAll()
	}
	return err == nil
}

// patienceSpent marks the context of a caller that waited returnPatience
// dials' time for a returning connection in vain: its construct dials.
type patienceSpent struct{}

// dialFacts reads what dialOrWait weighs for the caller of ctx.
func (p *Pool[C]) dialFacts(ctx context.Context) dialFacts {
	st := p.p.Stat()
	waiting := p.waiters.Load()
	if ctx.Value(waitingCaller{}) == nil {
		waiting++
	}
	return dialFacts{
		total:         st.TotalResources(),
		busy:          st.AcquiredResources(),
		waiting:       waiting,
		fairShare:     p.cfg.fairShare,
		slack:         p.slotSlack(),
		patienceSpent: ctx.Value(patienceSpent{}) != nil,
		slotFree:      len(p.dialSem) < cap(p.dialSem),
	}
}

// waitRecheck bounds a caller's wait between looks when it waits for a
// connection to come back (awaitReturn, awaitContention) rather than for
// a dial slot: a connection closed instead of returned (a failed probe,
// broken, past its lifetime) wakes nobody, and the caller may then be
// free to dial. Without the look, a caller told one comes back would
// sleep out its whole patience, which a slow dial under load stretches.
// It looks only whether any connection is still borrowed: re-estimating
// between wakes would have it dial mid-burst, where a wake would hand it
// a returned connection.
const waitRecheck = 50 * time.Millisecond

// dialOnce dials holding one of MaxConcurrentDials slots, unless the
// policy holds the dial back (dialOrWait): it then fails at once with
// dialHeld, as it does when the slot it was told of was taken meanwhile.
// A caller waiting for a slot would be bound to its own dial, while a
// connection another caller returns meanwhile could serve it sooner
// (after a freeze, a burst is served by the first fresh connections as
// they free up).
func (p *Pool[C]) dialOnce(ctx context.Context) (_ C, err error) {
	var zero C
	if a := p.policy.dialOrWait(nanotime(), p.dialFacts(ctx)); a.do != dialNow {
		return zero, dialHeld(a)
	}
	if p.awaitPass(ctx) {
		return zero, dialHeld{do: awaitReturn, until: nanotime() + int64(passPatience)}
	}
	select {
	case p.dialSem <- struct{}{}:
	default:
		return zero, dialHeld{do: awaitDialSlot}
	}
	if d, ok := ctx.Value(intoPool{}).(*intoPoolDial); ok {
		// A connection dialled into the pool is not there yet: its
		// dialer gives the token back and wakes the waiters once it is
		// (createIntoPool), so that they take it rather than dial one
		// more each.
		d.holdsToken.Store(true)
	} else {
		// puddle runs a caller's construct when it found no idle
		// connection, but one dialled into the pool (a hedge) may have
		// arrived since: the caller takes it instead. Once the token is
		// held, any such connection is in the idle list.
		if p.p.Stat().IdleResources() > 0 {
			<-p.dialSem
			return zero, dialHeld{do: awaitDialSlot}
		}
		defer func() {
			<-p.dialSem
			switch {
			case p.waiters.Load() == 0:
			case tooManyConnections(err):
				// The token is free for the callers waiting their turn;
				// those backing off from a refusal of the same kind keep
				// backing off. Waking one of them would have it dial and
				// be refused in turn, and wake the next: with budget
				// slots, whose refusals need no I/O, a loop that spins
				// at CPU speed until a slot frees.
				p.q.wakeAll()
			default:
				p.wakeAll()
			}
		}()
	}
	start := time.Now()
	c, err := p.dial(ctx)
	took := time.Since(start)
	full := false
	if err == nil && p.slotter != nil {
		var waited time.Duration
		full, waited = p.slotter.DialSettled(c)
		took -= waited // the wait for the pass is no part of the dial
	}
	p.m.dialed(took, err)
	if err != nil {
		p.counters.dialFailures.Add(1)
		p.path.dialFailed(err)
		p.dialsFailing(err)
		if tooManyConnections(err) {
			p.budgetFull(err)
		}
		return c, err
	}
	p.policy.dialTook(took)
	p.path.dialSucceeded()
	p.dialsSucceedAgain()
	if full {
		p.budgetFull(&NoSlotError{Slots: p.cfg.Slots(), Waiting: p.slotter.OthersWait()}) // it holds the pass: the slots are full
	}
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

// waitInsteadOfDial waits as the policy's answer a says (dialOrWait),
// at the caller's place in the queue, and returns the connection handed
// to it meanwhile, if any; the caller then tries again. dialBy is when a
// caller waiting for a returning connection dials anyway.
func (p *Pool[C]) waitInsteadOfDial(ctx context.Context, a dialAnswer, dialBy int64, place *waiter[puddle.Resource[*entry[C]]]) (*puddle.Resource[*entry[C]], error) {
	switch a.do {
	case awaitContention:
		limit := min(time.Duration(a.until-nanotime()), waitRecheck)
		if limit <= 0 {
			return nil, nil
		}
		res, _, err := p.waitTurn(ctx, limit, place)
		return res, err
	case awaitReturn:
		// Woken, it tries again; between wakes it looks only whether the
		// connections it waits for are gone.
		for limit := time.Duration(dialBy - nanotime()); limit > 0; limit = time.Duration(dialBy - nanotime()) {
			res, woke, err := p.waitTurn(ctx, min(limit, waitRecheck), place)
			if err != nil || res != nil || woke || p.p.Stat().AcquiredResources() == 0 {
				return res, err
			}
		}
		return nil, nil
	}
	res, _, err := p.waitTurn(ctx, 0, place)
	return res, err
}

// waitTurn parks a caller that found no idle connection and no free dial
// token, at its place in the queue, until a connection comes back (handed
// to it in its turn: returned as res), a dial ends or the pool closes; the
// caller then tries again. With limit > 0 (awaitReturn, awaitContention) a
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
			p.path.dialSucceeded()
			ended(true)
			return c, nil
		}
		p.counters.dialFailures.Add(1)
		p.path.dialFailed(err)
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
	if err == nil && !p.endOrphansOnDial(ctx, c) {
		// c broke in the pool's own round trip, before it served: the
		// dial opens another in its place, which leaves the orphans,
		// noted still, to the next dial or tick. The caller sees a
		// failure of that dial, as of any other, never one of the
		// pool's housekeeping.
		p.connector.Close(c, true)
		c, err = p.connector.Connect(ctx)
	}
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
