package runpool

import (
	"sync/atomic"
	"time"
)

// estimates are the pool's moving averages of how long things take on
// its path: a dial, a probe's round trip, a caller's use. The policy
// decides on them (policy.go); the mechanism feeds them as dials,
// probes and borrows end.
type estimates struct {
	// dialNanos is a moving average of how long a successful dial takes. A
	// probe slower than a fresh dial is not worth waiting for: the probe
	// deadline follows it (see probeTimeout).
	dialNanos atomic.Int64
	// dialAt is the nanotime of the last dial folded into dialNanos: an
	// estimate not refreshed for estimateFresh holds back no dial
	// (returnBeatsDial).
	dialAt atomic.Int64
	// rttNanos is a moving average of how long a successful probe takes,
	// one round trip of the path; 0 when none was measured since the last
	// failed probe (see roundTrip).
	rttNanos atomic.Int64
	// useNanos is a moving average of how long a caller keeps a
	// connection, timed while callers wait (see returnBeatsDial).
	useNanos atomic.Int64
}

func (s *estimates) dialNanosOrZero() time.Duration { return time.Duration(s.dialNanos.Load()) }

// estimateFresh is how recent the dial time must be for returnBeatsDial
// to hold back a dial on it. The dials that set it may have run under
// other conditions (a cold start beside other instances' dials takes
// several times as long as one a few seconds later), and an estimate
// that holds back every dial is never refreshed.
const estimateFresh = time.Second

// minProbeTimeout keeps a probe from failing a healthy connection on a
// scheduling hiccup when dials are very fast (loopback, a warm proxy).
const minProbeTimeout = 5 * time.Millisecond

// dialTook folds one dial's duration into the moving average (1/4
// weight), or starts it afresh when the last dial is older than
// estimateFresh: dials seconds apart ran under other conditions.
func (s *estimates) dialTook(d time.Duration) {
	now := nanotime()
	if now-s.dialAt.Swap(now) > int64(estimateFresh) {
		s.dialNanos.Store(int64(d))
		return
	}
	ewma(&s.dialNanos, d)
}

// useTook folds one borrow's duration into useNanos (1/4 weight).
func (s *estimates) useTook(d time.Duration) { ewma(&s.useNanos, d) }

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
func (s *estimates) probeTimeout(limit time.Duration) time.Duration {
	d := time.Duration(s.dialNanos.Load())
	if d == 0 {
		return limit
	}
	return max(min(max(d, minProbeTimeout), limit), probeRoundTrips*s.roundTrip())
}

// hedgeDelay is how long a probe with deadline timeout may go
// unanswered before a fresh connection is started for its caller: a
// fraction of the deadline, and never before a healthy connection on
// this path would have answered.
func (s *estimates) hedgeDelay(timeout time.Duration) time.Duration {
	return max(timeout/hedgeAfter, hedgeRoundTrips*s.roundTrip())
}

// hedgeAfter: a probe still unanswered after this fraction of its
// deadline (a healthy one takes one round trip, far less) starts a fresh
// connection in the background, so that when the probe fails the caller
// finds one open or opening instead of starting its dial only then.
const hedgeAfter = 4

// roundTrip is the path's round-trip time as the probes measure it (a
// ping is one round trip). Until a probe has, or after one failed, a
// dial stands in: it takes at least one round trip and usually several,
// so half of it errs on the long side when a dial is a single round trip.
func (s *estimates) roundTrip() time.Duration {
	if r := s.rttNanos.Load(); r != 0 {
		return time.Duration(r)
	}
	return time.Duration(s.dialNanos.Load() / 2)
}

// probeAnswered folds a successful probe's duration into the round-trip
// estimate; probeUnanswered forgets it, so that after a path grew slower
// (a failover to a distant replica) the next dials set the deadline again
// instead of the old path's round trip failing every probe.
func (s *estimates) probeAnswered(d time.Duration) { ewma(&s.rttNanos, d) }
func (s *estimates) probeUnanswered()              { s.rttNanos.Store(0) }

// probeRoundTrips and hedgeRoundTrips: a probe's deadline and its hedge
// in round trips of the path, so that a scheduling delay or a queued
// packet does not fail a healthy connection.
const (
	probeRoundTrips = 4
	hedgeRoundTrips = 2
)
