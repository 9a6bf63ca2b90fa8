package runpool

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"
)

// pathRecord is what the pool observed of its path for the freeze detector
// (the clocks at the last observation) and for the logs (the last
// failures, a run of failed dials). What the checkouts decide on is the
// policy's (policy.go).
type pathRecord struct {
	mu       sync.Mutex // guards lastMono and lastWall
	lastMono int64      // nanotime of the last observation
	lastWall int64      // wall clock (Unix ns) of the last observation

	dialErr  atomic.Pointer[error] // last dial failure, nil after a success
	probeErr atomic.Pointer[error] // last failed probe's error, for the log

	// A run of failed dials (53300 aside), for its two log lines:
	// failingSince is the nanotime of its first failure, 0 when the last
	// dial succeeded; failedInRun counts its failures.
	failingSince atomic.Int64
	failedInRun  atomic.Int64
}

func (h *pathRecord) init(now int64) {
	h.lastMono = now
	h.lastWall = time.Now().UnixNano()
}

func (h *pathRecord) dialFailed(err error) { h.dialErr.Store(&err) }
func (h *pathRecord) dialSucceeded() {
	if h.dialErr.Load() != nil {
		h.dialErr.Store(nil)
	}
}

func (h *pathRecord) lastProbeError() error {
	if p := h.probeErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (h *pathRecord) lastDialError() error {
	if p := h.dialErr.Load(); p != nil {
		return *p
	}
	return nil
}

// inspect puts the idle connection res, just checked out, through the
// checks the policy calls for (policy.idle) and reports whether it may be
// checked out, with the clock read to check it out at; when not, it has closed res
// or, when ctx ended before its probe, put it back. With shouldPing the
// ShouldPing hook may ask for a probe of a connection the policy trusts.
// A trusted connection costs one clock read and two atomic loads; the
// lifetime is checked with the same clock read, on every checkout, as
// pgxpool does.
func (p *Pool[C]) inspect(ctx context.Context, res *puddle.Resource[*entry[C]], e *entry[C], shouldPing bool) (now int64, ok bool) {
	now = nanotime()
	a := p.policy.idle(now, &e.stamps, &p.rules, false)
	seek := p.slotter != nil && a.do != idleDiscard && p.slotter.WantsProbe(e.conn, p.wantsSlot(now))
	if a.do.unprobed() && (seek || shouldPing && p.pingWanted(ctx, e, time.Duration(now-e.idleSince))) {
		a.do = idleDoubt
	}
	if a.do == idleDoubt {
		// A checkout in doubt is the freeze detector's look at the clock
		// too: a freeze it reveals moves the epochs before the policy
		// answers again, and may condemn this connection.
		now = nanotime()
		p.observeClock(now, time.Now())
		a = p.policy.idle(now, &e.stamps, &p.rules, true)
	}
	switch a.do {
	case idleHandOut:
		return now, true
	case idlePeek:
		if p.looksOpen(e) {
			return now, true
		}
		p.discardGone(res, e)
	case idleProbe:
		if p.probe(ctx, res, e, a) {
			if seek && p.waiters.Load() > 0 {
				p.wakeAll() // the probe tried for a slot: the pass may be free to dial
			}
			return nanotime(), true
		}
	case idleDiscard:
		p.discardIdle(res, e, a.why)
	}
	return 0, false
}

// looksOpen is the peek (idlePeek): the connector's Gone, when it has one.
func (p *Pool[C]) looksOpen(e *entry[C]) bool {
	return p.gone == nil || !p.gone.Gone(e.conn)
}

// discardGone closes a connection the server already ended, found by the
// connector's Gone on the fast path. Its idle siblings likely share its
// fate (a restart, pg_terminate_backend of the role): each must now prove
// itself.
func (p *Pool[C]) discardGone(res *puddle.Resource[*entry[C]], e *entry[C]) {
	if p.endedIdle(e) {
		res.Destroy()
		return
	}
	p.discarded(staleClosedByServer)
	e.dead.Store(true)
	res.Destroy()
	p.policy.distrust()
}

// discardIdle closes an idle connection the policy condemned unprobed,
// counting it by why.
func (p *Pool[C]) discardIdle(res *puddle.Resource[*entry[C]], e *entry[C], why discardReason) {
	switch why {
	case discardLifetime:
		p.counters.lifetimeExpired.Add(1)
	case discardIdle:
		p.counters.idleExpired.Add(1)
	case discardFreeze:
		p.discarded(staleFreeze)
		e.dead.Store(true)
	case discardCohort:
		p.discarded(staleCohort)
		e.dead.Store(true)
	}
	p.noteOverdue(e, nanotime())
	p.destroy(res)
}

// probe pings an idle connection in doubt (idleProbe) within a's
// deadline, hedged as a says. It reports whether the connection may be
// handed out; when not, it has already been destroyed, or put back
// unprobed when ctx ended first. A probe never outlasts ProbeTimeout, so
// a caller pays at most one probe per stale connection, and a failed
// probe condemns the connections that idled longer than the one that
// failed, so it pays one probe per stale cohort.
func (p *Pool[C]) probe(ctx context.Context, res *puddle.Resource[*entry[C]], e *entry[C], a idleAnswer) bool {
	last := e.idleSince
	if ctx.Err() != nil {
		// The caller gave up before the probe: the connection goes back
		// as it was, still due for a probe.
		res.ReleaseUnused()
		return false
	}

	p.counters.probes.Add(1)
	timeout := a.timeout
	var hedge *time.Timer
	if a.hedge > 0 {
		hedge = time.AfterFunc(a.hedge, p.hedgeDial)
	}
	start := time.Now()
	if ctx.Done() == nil {
		return p.probeDone(res, e, p.ping(ctx, e, timeout), start, hedge, last)
	}
	// The probe's deadline is its own, never the caller's: a caller that
	// gives up mid-probe returns at once, and the probe runs on to its
	// end, which decides what becomes of the connection. (Ended by the
	// caller's context, pgx would close a healthy connection.)
	done := make(chan error, 1)
	go func() { done <- p.ping(ctx, e, timeout) }()
	select {
	case err := <-done:
		return p.probeDone(res, e, err, start, hedge, last)
	case <-ctx.Done():
		p.probed(time.Since(start), probeCancelled)
		go func() {
			if p.probeDone(res, e, <-done, start, hedge, last) {
				p.returnProbed(res, e)
			}
		}()
		return false
	}
}

// ping is one probe of e within timeout, whatever ctx's deadline (ctx
// lends only its values).
func (p *Pool[C]) ping(ctx context.Context, e *entry[C], timeout time.Duration) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	return p.connector.Ping(pctx, e.conn)
}

// probeDone acts on a probe's outcome, which started at start and idled
// since last: it reports whether the connection answered; when not, it
// has destroyed it and, the probe having had its own deadline, taken
// the failure as a sign of trouble on the path.
func (p *Pool[C]) probeDone(res *puddle.Resource[*entry[C]], e *entry[C], err error, start time.Time, hedge *time.Timer, last int64) bool {
	took := time.Since(start)
	if hedge != nil {
		hedge.Stop()
	}
	if err == nil {
		p.probed(took, probeOK)
		p.policy.probeAnswered(took)
		return true
	}
	if p.endedIdle(e) {
		res.Destroy()
		p.probed(took, probeFailed)
		return false
	}
	p.policy.probeUnanswered()
	e.dead.Store(true)
	res.Destroy()
	p.probed(took, probeFailed)
	p.counters.probeFailures.Add(1)
	p.path.probeErr.Store(&err)
	p.discarded(staleProbeFailed)
	p.policy.condemnCohort(last)
	return false
}

// returnProbed puts back a connection that passed the probe its caller
// gave up on: it is as fresh as a connection just used.
func (p *Pool[C]) returnProbed(res *puddle.Resource[*entry[C]], e *entry[C]) {
	if p.isDraining() {
		p.destroy(res)
		return
	}
	e.epoch = p.policy.epoch.Load()
	e.idleSince = nanotime()
	p.putIdle(res)
}

// hedgeDial opens one connection into the pool for a slow probe's caller,
// if a dial token is free and the pool has room; otherwise the dials
// already under way serve.
func (p *Pool[C]) hedgeDial() {
	if !p.isDraining() {
		p.createIntoPool(&p.counters.hedgedDials)
	}
}

// observeTick is the maintainer's freeze detector.
func (p *Pool[C]) observeTick(now time.Time) { p.observeClock(nanotime(), now) }

// observeClock notices that the process did not run for a while: the
// monotonic or the wall clock moved further since the last observation
// than the maintainer's period allows. Idle connections then are not
// trusted without a probe, or at all when the freeze outlasted the path's
// idle timeout.
func (p *Pool[C]) observeClock(mono int64, wall time.Time) {
	h := &p.path
	h.mu.Lock()
	gap := max(mono-h.lastMono, wall.UnixNano()-h.lastWall)
	h.lastMono, h.lastWall = mono, wall.UnixNano()
	h.mu.Unlock()

	frozen := time.Duration(gap) - p.cfg.MaintainInterval
	if frozen < p.cfg.FreezeThreshold {
		return
	}
	// The connections idle at the thaw, counted before the freeze is, so
	// that no checkout prompted by the count changes the figure logged.
	idle := p.p.Stat().IdleResources()
	p.counters.freezes.Add(1)
	discard := p.policy.froze(frozen, p.cfg.PathIdleTimeout)
	p.m.freeze.Record(context.Background(), frozen.Seconds(), p.m.rec...)
	// Info when it condemns idle connections to a probe or a discard;
	// with none idle there is nothing to decide (and an idle instance on
	// a platform that freezes it would log every gap).
	level, action := slog.LevelInfo, "probe idle connections"
	if discard {
		action = "discard idle connections (frozen past PathIdleTimeout)"
	}
	if idle == 0 {
		level = slog.LevelDebug
	}
	p.cfg.Logger.Log(context.Background(), level, "runpool: freeze detected",
		"pool", p.cfg.Name, "frozen", frozen.Round(time.Millisecond), "idle", idle, "action", action)
}
