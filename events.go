package runpool

import (
	"context"
	"sync/atomic"
	"time"
)

// Events: what the pool records when it decides something, in the
// counters behind Stat, the instruments of metrics.go and the log. A log
// line stands for an episode (a wave of stale discards, a run of failed
// dials, back-pressure), not for a caller or a connection, so in the
// steady state the pool logs nothing at Info.

// dialed records one connection attempt: its result and, when it
// succeeded, how long it took (create_time).
func (m *metrics) dialed(d time.Duration, err error) {
	ctx := context.Background()
	switch {
	case err == nil:
		m.dials.Add(ctx, 1, m.dialBy[dialOK]...)
		m.createTime.Record(ctx, d.Seconds(), m.rec...)
	case tooManyConnections(err):
		m.dials.Add(ctx, 1, m.dialBy[dialTooMany]...)
	default:
		m.dials.Add(ctx, 1, m.dialBy[dialFailed]...)
	}
}

// discarded counts one connection discarded as stale. The maintainer logs
// the discards in aggregate (logStale).
func (p *Pool[C]) discarded(r staleReason) {
	p.counters.staleDiscarded.Add(1)
	p.counters.staleBy[r].Add(1)
	p.staleLog.lastAt.Store(nanotime())
	p.m.stale.Add(context.Background(), 1, p.m.staleBy[r]...)
}

// probed records one checkout probe.
func (p *Pool[C]) probed(d time.Duration, result int) {
	p.m.probe.Record(context.Background(), d.Seconds(), p.m.probeBy[result]...)
}

// staleWaveMax bounds how long discards that keep coming tick after tick
// go unlogged: a wave that does not end is logged every staleWaveMax.
const staleWaveMax = 10 * time.Second

// staleLog is the maintainer's memory of what it last logged about stale
// discards: logged and since are the maintainer's alone (and Shutdown's,
// after it stopped); lastAt is written by the checkouts that discard.
type staleLog struct {
	logged [numStaleReasons]int64
	since  time.Time
	lastAt atomic.Int64 // nanotime of the last discard (written by checkouts)
}

// logStale writes one line for the stale connections discarded since the
// last line, if any: one event per wave, however many connections it
// took. A wave ends when a maintainer period has passed without a
// discard (time the process was frozen counts), so one that spans a tick
// (a discard, then a sibling's probe failing) is still one line; flush
// (Shutdown) writes what is pending at once.
func (p *Pool[C]) logStale(now time.Time, flush bool) {
	l := &p.staleLog
	if l.since.IsZero() {
		l.since = now
	}
	var cur [numStaleReasons]int64
	var n int64
	for i := range cur {
		cur[i] = p.counters.staleBy[i].Load()
		n += cur[i] - l.logged[i]
	}
	if n == 0 {
		l.since = now
		return
	}
	quiet := nanotime()-l.lastAt.Load() >= int64(p.cfg.MaintainInterval)
	if !quiet && !flush && now.Sub(l.since) < staleWaveMax {
		return
	}
	args := []any{"pool", p.cfg.Name, "count", n}
	for i, name := range staleReasonNames {
		if d := cur[i] - l.logged[i]; d > 0 {
			args = append(args, name, d)
		}
	}
	if err := p.path.lastProbeError(); err != nil && cur[staleProbeFailed] > l.logged[staleProbeFailed] {
		args = append(args, "probe_err", err)
	}
	args = append(args, "within", now.Sub(l.since).Round(time.Millisecond))
	p.cfg.Logger.Info("runpool: stale connections discarded", args...)
	l.logged, l.since = cur, now
}

// dialsFailing logs the first failed dial of a run (the server is away,
// or refuses the pool): one Warn line per run, however many dials and
// callers it takes. 53300 is back-pressure's, logged as such.
func (p *Pool[C]) dialsFailing(err error) {
	if tooManyConnections(err) {
		return
	}
	p.path.failedInRun.Add(1)
	if p.path.failingSince.CompareAndSwap(0, nanotime()) {
		p.cfg.Logger.Warn("runpool: dials failing", "pool", p.cfg.Name, "err", err, "server_away", serverAway(err))
	}
}

// dialsSucceedAgain ends a run of failed dials with one Info line.
func (p *Pool[C]) dialsSucceedAgain() {
	since := p.path.failingSince.Load()
	if since == 0 || !p.path.failingSince.CompareAndSwap(since, 0) {
		return
	}
	p.cfg.Logger.Info("runpool: dials succeed again", "pool", p.cfg.Name,
		"failed", p.path.failedInRun.Swap(0), "duration", time.Duration(nanotime()-since).Round(time.Millisecond))
}

// backpressure tracks an episode of 53300 back-pressure across callers:
// it begins when the first caller meets a full server and ends when the
// last caller that met one has left Acquire, served or not, so a person
// reading the log sees two lines per episode rather than one per caller.
type backpressure struct {
	callers  atomic.Int32 // callers between their first 53300 and their Acquire's return
	since    atomic.Int64 // nanotime the episode began
	backoffs atomic.Int64 // counters.backoffs when it began
	served   atomic.Int64
	failed   atomic.Int64
}

// backpressureBegun is called when a caller meets its first 53300.
func (p *Pool[C]) backpressureBegun() {
	if p.bp.callers.Add(1) != 1 {
		return
	}
	p.bp.since.Store(nanotime())
	p.bp.backoffs.Store(p.counters.backoffs.Load())
	p.cfg.Logger.Info("runpool: back-pressure begun: the server is full (53300), callers wait within their deadlines",
		"pool", p.cfg.Name, "phase", "acquire")
}

// backpressureLeft is called when a caller that met a 53300 leaves
// Acquire.
func (p *Pool[C]) backpressureLeft(served bool) {
	if served {
		p.bp.served.Add(1)
	} else {
		p.bp.failed.Add(1)
	}
	if p.bp.callers.Add(-1) != 0 {
		return
	}
	p.cfg.Logger.Info("runpool: back-pressure ended", "pool", p.cfg.Name, "phase", "acquire",
		"duration", time.Duration(nanotime()-p.bp.since.Load()).Round(time.Millisecond),
		"backoffs", p.counters.backoffs.Load()-p.bp.backoffs.Load(),
		"served", p.bp.served.Swap(0), "failed", p.bp.failed.Swap(0))
}

// drained records a drain's outcome.
func (p *Pool[C]) drained(r DrainReport, complete bool) {
	ctx := context.Background()
	m := p.m
	for i, n := range [numDrainOutcomes]int{r.ClosedIdle, r.Returned, r.Cancelled, r.Abandoned} {
		if n > 0 {
			m.drainConns.Add(ctx, int64(n), m.drainBy[i]...)
		}
	}
	done := 0
	if complete {
		done = 1
	}
	m.drainTime.Record(ctx, r.Duration.Seconds(), m.drainDone[done]...)
}
