package runpool

import (
	"context"
	"time"
)

// runningSteps is how many ticks a running-time deadline is measured in.
const runningSteps = 10

// withRunningTimeout is context.WithTimeout for the maintainer's own
// queries, with d counted in time the process ran: a freeze (SIGSTOP, a
// platform's CPU throttle) does not count. An instance is frozen right
// after its requests end, which is when the maintainer's tick runs; with
// a plain deadline, a query caught by the freeze is cancelled at the thaw
// for a deadline that passed while nothing ran, its answer waiting in the
// socket, and pgx closes the healthy connection it ran on. The deadline
// is runningSteps ticks of d/runningSteps, each counted as at most one
// step however late it came: a freeze costs one step, and a tick made
// late by a loaded machine lengthens the wait rather than shortens it.
func withRunningTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	step := max(d/runningSteps, time.Millisecond)
	go func() {
		t := time.NewTicker(step)
		defer t.Stop()
		last := nanotime()
		for ran := time.Duration(0); ran < d; {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now := nanotime()
			ran += min(time.Duration(now-last), step)
			last = now
		}
		cancel()
	}()
	return ctx, cancel
}
