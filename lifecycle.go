package runpool

import (
	"context"
	"log/slog"
	"time"
)

// DrainReport says what a drain did, for the shutdown log line.
type DrainReport struct {
	ClosedIdle int // idle connections closed at once
	WaitedFor  int // connections in use when the drain began
	Returned   int // connections released during the drain
	Cancelled  int // connections whose work was cancelled at the deadline
	Abandoned  int // connections still in use when the drain gave up
	// DialsCut is the dials still under way when the drain ended: from
	// the cancel point (shortly before the deadline) it stops waiting for
	// callers' dials, and closing the pool cuts them (a dial into a black
	// hole would hold it until DialTimeout); their callers get an error.
	// Dials no caller waits for (hedges, MinConns) are cut as it begins.
	DialsCut int
	Duration time.Duration // from the start of the drain to its end
}

// Drainer is a pool that can drain: *Pool, *pgxadapter.Pool, or a
// database/sql *sql.DB through sqladapter.Drainer(db). What shuts a
// process down takes them: serve.HTTP, lambdadrain.Start.
type Drainer interface {
	Shutdown(ctx context.Context) (DrainReport, error)
}

// Shutdown drains the pool, as http.Server.Shutdown drains a server: it
// closes idle connections at once, lets the ones in use finish (their
// holders may still acquire more), closes each as it is released (or
// hands it to a caller that was already waiting for one), and
// shortly before ctx's deadline asks the server to cancel whatever is still
// running. It returns when every connection is closed or ctx is done,
// with ctx's error in the latter case. Later calls wait for the first and
// return its report.
func (p *Pool[C]) Shutdown(ctx context.Context) (DrainReport, error) {
	first := false
	p.closeOnce.Do(func() { first = true })
	if !first {
		<-p.shutdownDone
		return p.report, nil
	}
	defer close(p.shutdownDone)
	start := time.Now()
	cancelAt := p.cancelTime(ctx)
	p.stopBg() // hedges, the MinConns floor, ending orphans: the maintainer may be in one
	close(p.stopMaintainer)
	<-p.maintainerDone
	if p.quiet != nil {
		p.quiet.Stop() // the worker it would wake is gone
	}
	p.logStale(time.Now(), true) // what the maintainer had not logged yet
	if spare := p.spare.Swap(nil); spare != nil {
		p.connector.Close(*spare, false)
	}

	p.takeParked()
	// While idle connections are still there to do it, within half the
	// time to the cancel point: the rest is the drain's.
	octx, ocancel := context.WithDeadline(ctx, time.Now().Add(time.Until(cancelAt)/2))
	p.endOrphans(octx, false)
	ocancel()

	p.mu.Lock()
	p.draining.Store(true)
	p.report.WaitedFor = p.checkedOutLocked()
	p.mu.Unlock()
	// Parks from now on return the connection instead (Conn.Park); those
	// parked before are idle, closed here.
	p.report.ClosedIdle += p.takeParked()
	now := nanotime()
	for _, res := range p.p.AcquireAllIdle() {
		p.report.ClosedIdle++
		p.noteDoubted(res.Value(), now)
		res.Destroy()
	}

	var err error
	timer := time.NewTimer(time.Until(cancelAt))
	defer timer.Stop()
	cancelled := false
	// Releases signal p.released, but a destroyed connection leaves puddle's
	// count a moment later, so poll as well.
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
wait:
	// Idle connections count too: one released for a waiting caller is
	// idle until that caller takes it. So do dials under way, until the
	// cancel point: each is a caller's, and closing the pool cuts it.
	for st := p.p.Stat(); st.AcquiredResources() > 0 || st.IdleResources() > 0 || (!cancelled && st.ConstructingResources() > 0); st = p.p.Stat() {
		select {
		case <-p.released:
		case <-poll.C:
		case <-timer.C:
			if !cancelled {
				cancelled = true
				p.report.Cancelled = p.cancelInUse()
			}
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
		if p.waiters.Load() == 0 {
			p.closeIdle() // kept for a caller that no longer waits
		}
	}
	final := p.p.Stat()
	p.report.Abandoned = int(final.AcquiredResources())
	p.report.DialsCut = int(final.ConstructingResources())
	p.report.Returned = p.report.WaitedFor - p.report.Abandoned
	if p.report.Returned < 0 {
		p.report.Returned = 0
	}

	// puddle's Close waits for every connection in use; only wait for it
	// when none is left.
	closed := make(chan struct{})
	go func() { p.p.Close(); p.wakeAll(); close(closed) }()
	if p.report.Abandoned == 0 {
		<-closed // every close done: every orphan noted
	}
	p.endLeftOrphans(ctx)
	p.report.Duration = time.Since(start)
	p.drained(p.report, p.report.Abandoned == 0)
	p.unregisterGauges()
	level := slog.LevelInfo
	if p.report.Abandoned > 0 {
		level = slog.LevelWarn // server slots may outlive the process
	}
	p.cfg.Logger.Log(context.Background(), level, "runpool: drained",
		"pool", p.cfg.Name, "closed_idle", p.report.ClosedIdle, "waited_for", p.report.WaitedFor,
		"returned", p.report.Returned, "cancelled", p.report.Cancelled, "abandoned", p.report.Abandoned, "dials_cut", p.report.DialsCut,
		"duration", p.report.Duration, "err", err)
	return p.report, err
}

// cancelTime is when the drain cancels what still runs: before ctx's
// deadline by a tenth of the time left (at most maxCancelMargin), or by
// what cancelling needs when that is more, but never by more than half
// the time left: the other half is the work's.
func (p *Pool[C]) cancelTime(ctx context.Context) time.Time {
	deadline, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(100 * 365 * 24 * time.Hour)
	}
	left := time.Until(deadline)
	need := max(minCancelMargin, cancelRoundTrips*(p.policy.dialNanosOrZero()+p.policy.roundTrip()))
	margin := max(min(left/10, maxCancelMargin), min(need, left/2))
	return deadline.Add(-margin)
}

// What a cancel needs before the deadline: it dials the server (a dial,
// less the session's setup), the server stops the query, the error comes
// back in a round trip, the holder releases and the drain closes.
// cancelRoundTrips doubles the path's own estimate of that for queued
// packets; minCancelMargin is the floor for a process the machine
// schedules late (a loaded host, a throttled CPU), which no estimate of
// the path foresees; maxCancelMargin caps the tenth of a long budget.
const (
	cancelRoundTrips = 2
	minCancelMargin  = 200 * time.Millisecond
	maxCancelMargin  = 500 * time.Millisecond
)

// cancelInUse asks the server to cancel the work of every checked-out
// connection. The holders then see an error, release, and the release
// closes the connection.
func (p *Pool[C]) cancelInUse() int {
	p.mu.Lock()
	var inUse []C
	for e := range p.entries {
		if e.inUse.Load() {
			inUse = append(inUse, e.conn)
		}
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, c := range inUse {
		_ = p.connector.Cancel(ctx, c)
	}
	return len(inUse)
}

// CheckedOut is the number of connections callers hold now: acquired and
// not yet released (a parked one is idle). Unlike Stat's AcquiredConns it
// leaves out the pool's own brief holds (the maintainer's sweep, the
// query that ends orphaned sessions, a checkout's probe) and connections
// being closed. A close that does not wait for what callers keep (as
// database/sql's) may wait for the whole drain when it is 0.
func (p *Pool[C]) CheckedOut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.checkedOutLocked()
}

// checkedOutLocked is CheckedOut with p.mu held.
func (p *Pool[C]) checkedOutLocked() int {
	n := 0
	for e := range p.entries {
		if e.inUse.Load() {
			n++
		}
	}
	return n
}

func (p *Pool[C]) isDraining() bool { return p.draining.Load() }

// neededInDrain reports whether a connection released during the drain
// should serve another caller rather than close: callers of this process
// wait for their turn, or the pool is full, so that callers may wait in
// puddle for a free slot. They are requests in flight; handing them a
// connection that is already open frees the server slot no later than
// closing it and dialing them a new one would, and spares them the dial.
// A connection kept for nobody is closed by the drain's next poll (at
// most 10 ms later).
func (p *Pool[C]) neededInDrain() bool {
	if p.waiters.Load() > 0 {
		return true
	}
	st := p.p.Stat()
	return st.TotalResources() >= st.MaxResources()
}

// closeIdle closes every idle connection.
func (p *Pool[C]) closeIdle() {
	for _, res := range p.p.AcquireAllIdle() {
		res.Destroy()
	}
}

// afterDrainRelease wakes the drain when a connection comes back.
func (p *Pool[C]) afterDrainRelease() { p.wakeAll() }
