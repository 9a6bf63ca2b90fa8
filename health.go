package runpool

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"
)

// health holds what the pool knows about the path to the server: when the
// process last ran (freeze detection) and the last dial failure.
type health struct {
	mu       sync.Mutex // guards lastMono and lastWall
	lastMono int64      // nanotime of the last observation
	lastWall int64      // wall clock (Unix ns) of the last observation

	// A connection is closed on checkout without a probe when it was
	// released before discardGen (a freeze longer than the path's idle
	// timeout condemned it) or released before discardBefore (nanotime,
	// entry.idleSince): a sibling that idled less failed its probe.
	discardGen    atomic.Int64
	discardBefore atomic.Int64

	dialErr  atomic.Pointer[error] // last dial failure, nil after a success
	probeErr atomic.Pointer[error] // last failed probe's error, for the log
	// dialNanos is a moving average of how long a successful dial takes. A
	// probe slower than a fresh dial is not worth waiting for: the probe
	// deadline follows it (see probeTimeout).
	dialNanos atomic.Int64
	// dialAt is the nanotime of the last dial folded into dialNanos: an
	// estimate not refreshed for estimateFresh holds back no dial
	// (comesBackSooner).
	dialAt atomic.Int64
	// rttNanos is a moving average of how long a successful probe takes,
	// one round trip of the path; 0 when none was measured since the last
	// failed probe (see roundTrip).
	rttNanos atomic.Int64
	// useNanos is a moving average of how long a borrower keeps a
	// connection, timed while callers wait (see comesBackSooner).
	useNanos atomic.Int64

	// A run of failed dials (53300 aside), for its two log lines:
	// failingSince is the nanotime of its first failure, 0 when the last
	// dial succeeded; failedInRun counts its failures.
	failingSince atomic.Int64
	failedInRun  atomic.Int64
}

func (h *health) dialNanosOrZero() time.Duration { return time.Duration(h.dialNanos.Load()) }

// minProbeTimeout keeps a probe from failing a healthy connection on a
// scheduling hiccup when dials are very fast (loopback, a warm proxy).
const minProbeTimeout = 5 * time.Millisecond

// dialTook folds one dial's duration into the moving average (1/4
// weight), or starts it afresh when the last dial is older than
// estimateFresh: dials seconds apart ran under other conditions.
func (h *health) dialTook(d time.Duration) {
	now := nanotime()
	if now-h.dialAt.Swap(now) > int64(estimateFresh) {
		h.dialNanos.Store(int64(d))
		return
	}
	ewma(&h.dialNanos, d)
}

// useTook folds one borrow's duration into useNanos (1/4 weight).
func (h *health) useTook(d time.Duration) { ewma(&h.useNanos, d) }

// ewma folds d into the moving average v with weight 1/4 (the first
// sample is taken as is). Concurrent updates may lose one; an estimate
// does not need them all.
func ewma(v *atomic.Int64, d time.Duration) {
	old := v.Load()
	if old == 0 {
		v.Store(int64(d))
		return
	}
	v.Store(old + (int64(d)-old)/4)
}

// probeTimeout is the probe's deadline: the typical dial time within
// [minProbeTimeout, limit], and at least probeRoundTrips round trips of
// this path. On a nearby server a connection that cannot answer a ping
// in the time a fresh one takes to open is replaced by a fresh one, and
// a false alarm costs one dial, never a failed request; on a distant one,
// where a single round trip may exceed limit, a healthy connection still
// answers in time, and a dead one is found within a few of the path's
// own round trips.
func (h *health) probeTimeout(limit time.Duration) time.Duration {
	d := time.Duration(h.dialNanos.Load())
	if d == 0 {
		return limit
	}
	return max(min(max(d, minProbeTimeout), limit), probeRoundTrips*h.roundTrip())
}

// hedgeDelay is how long a probe with deadline timeout may go
// unanswered before a fresh connection is started for its caller: a
// fraction of the deadline, and never before a healthy connection on
// this path would have answered.
func (h *health) hedgeDelay(timeout time.Duration) time.Duration {
	return max(timeout/hedgeAfter, hedgeRoundTrips*h.roundTrip())
}

// roundTrip is the path's round-trip time as the probes measure it (a
// ping is one round trip). Until a probe has, or after one failed, a
// dial stands in: it takes at least one round trip and usually several,
// so half of it errs on the long side when a dial is a single round trip.
func (h *health) roundTrip() time.Duration {
	if r := h.rttNanos.Load(); r != 0 {
		return time.Duration(r)
	}
	return time.Duration(h.dialNanos.Load() / 2)
}

// probeAnswered folds a successful probe's duration into the round-trip
// estimate; probeUnanswered forgets it, so that after a path grew slower
// (a failover to a distant replica) the next dials set the deadline again
// instead of the old path's round trip failing every probe.
func (h *health) probeAnswered(d time.Duration) { ewma(&h.rttNanos, d) }
func (h *health) probeUnanswered()              { h.rttNanos.Store(0) }

// probeRoundTrips and hedgeRoundTrips: a probe's deadline and its hedge
// in round trips of the path, so that a scheduling delay or a queued
// packet does not fail a healthy connection.
const (
	probeRoundTrips = 4
	hedgeRoundTrips = 2
)

func (h *health) init(now int64) {
	h.lastMono = now
	h.lastWall = time.Now().UnixNano()
}

func (h *health) dialFailed(err error) { h.dialErr.Store(&err) }
func (h *health) dialSucceeded() {
	if h.dialErr.Load() != nil {
		h.dialErr.Store(nil)
	}
}

func (h *health) lastProbeError() error {
	if p := h.probeErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (h *health) lastDialError() error {
	if p := h.dialErr.Load(); p != nil {
		return *p
	}
	return nil
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

// trusted is the checkout fast path: a connection used recently and
// released after the last sign of trouble is handed out as is, unless an
// interrupted connection's verdict is pending. It costs one clock read
// and two atomic loads; acquire checks the lifetime with the same clock
// read, on every checkout, as pgxpool does.
func (p *Pool[C]) trusted(idle time.Duration, e *entry[C]) bool {
	return idle < p.probeAfter && e.gen == p.gen.Load() && p.unsettled.Load() == 0
}

// looksOpen is the look a trusted connection gets on checkout: none when
// it was back in use within peekAfterIdle, else the connector's Gone.
func (p *Pool[C]) looksOpen(e *entry[C], idle time.Duration) bool {
	return idle < peekAfterIdle || p.gone == nil || !p.gone.Gone(e.conn)
}

// discardGone closes a connection the server already ended, found by the
// connector's Gone on the fast path. Its idle siblings likely share its
// fate (a restart, pg_terminate_backend of the role): each must now prove
// itself.
func (p *Pool[C]) discardGone(res *puddle.Resource[*entry[C]], e *entry[C]) {
	p.discarded(staleClosedByServer)
	e.dead.Store(true)
	res.Destroy()
	p.gen.Add(1)
}

// check is the checkout slow path. It reports whether the connection may
// be handed out; when not, it has already been destroyed. A probe never
// outlasts ProbeTimeout, so a caller pays at most one probe per stale
// connection, and a failed probe condemns the connections that idled
// longer than the one that failed, so it pays one probe per stale cohort.
func (p *Pool[C]) check(ctx context.Context, res *puddle.Resource[*entry[C]], e *entry[C]) bool {
	now := nanotime()
	p.observeClock(now, time.Now())
	last := e.idleSince
	idle := time.Duration(now - last)
	switch {
	case now >= e.expiresAt:
		p.counters.lifetimeExpired.Add(1)
		res.Destroy()
		return false
	case idle >= p.maxIdle:
		p.counters.idleExpired.Add(1)
		res.Destroy()
		return false
	case e.gen < p.health.discardGen.Load():
		p.discarded(staleFreeze)
		e.dead.Store(true)
		res.Destroy()
		return false
	case last < p.health.discardBefore.Load():
		p.discarded(staleCohort)
		e.dead.Store(true)
		res.Destroy()
		return false
	}

	if ctx.Err() != nil {
		// The caller gave up before the probe: the connection goes back
		// as it was, still due for a probe.
		res.ReleaseUnused()
		return false
	}

	p.counters.probes.Add(1)
	timeout := p.health.probeTimeout(p.cfg.ProbeTimeout)
	if pt := p.cfg.PingTimeout; pt > 0 {
		timeout = min(timeout, pt)
	}
	// A connection opened within a probe's deadline (a hedged one, probed
	// because a sibling's probe failed as it opened) gets no hedge of its
	// own: it was dialled a moment ago, and its probe takes a round trip,
	// which the hedge's delay may not cover.
	var hedge *time.Timer
	if now-e.created >= int64(timeout) {
		hedge = time.AfterFunc(p.health.hedgeDelay(timeout), p.hedgeDial)
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
		p.health.probeAnswered(took)
		return true
	}
	p.health.probeUnanswered()
	e.dead.Store(true)
	res.Destroy()
	p.probed(took, probeFailed)
	p.counters.probeFailures.Add(1)
	p.health.probeErr.Store(&err)
	p.discarded(staleProbeFailed)
	raise(&p.health.discardBefore, last)
	p.gen.Add(1)
	return false
}

// returnProbed puts back a connection that passed the probe its caller
// gave up on: it is as fresh as a connection just used.
func (p *Pool[C]) returnProbed(res *puddle.Resource[*entry[C]], e *entry[C]) {
	if p.isDraining() {
		p.destroy(res)
		return
	}
	e.gen = p.gen.Load()
	e.idleSince = nanotime()
	p.putIdle(res)
}

// hedgeAfter: a probe still unanswered after this fraction of its
// deadline (a healthy one takes one round trip, far less) starts a fresh
// connection in the background, so that when the probe fails the caller
// finds one open or opening instead of starting its dial only then.
const hedgeAfter = 4

// hedgeDial opens one connection into the pool for a slow probe's caller,
// if a dial token is free and the pool has room; otherwise the dials
// already under way serve.
func (p *Pool[C]) hedgeDial() {
	if p.isDraining() {
		return
	}
	ctx, cancel := context.WithTimeout(p.bg, p.cfg.DialTimeout)
	defer cancel()
	if p.p.CreateResource(ctx) != nil {
		return
	}
	p.counters.hedgedDials.Add(1)
	if p.waiters.Load() > 0 {
		p.wakeAll()
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
	h := &p.health
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
	g := p.gen.Add(1) // every connection idle now must prove itself
	discard := p.cfg.PathIdleTimeout > 0 && frozen >= p.cfg.PathIdleTimeout
	if discard {
		raise(&h.discardGen, g)
	}
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
