package runpool

import (
	"testing"
	"time"
)

// The policy's answers are pure: each table row sets the signals and the
// facts, asks at a fixed now, and checks the answer. No server, no clock.

// t0 is the tables' now (nanotime); at(d) is d after it (before, when
// negative).
const t0 = int64(1000 * time.Hour)

func at(d time.Duration) int64 { return t0 + int64(d) }

// signals are a policy's state, for a table row.
type signals struct {
	epoch, discardEpoch int64
	cohortCut           int64 // nanotime, 0 for none
	unsettled           int32
	dial, rtt, use      time.Duration // estimates, 0 for none
	dialAt              int64         // nanotime of the last dial folded in
	contendedUntil      int64
	borrowPausedUntil   int64
}

func (s signals) policy() *policy {
	pl := new(policy)
	pl.epoch.Store(s.epoch)
	pl.discardEpoch.Store(s.discardEpoch)
	pl.cohortCut.Store(s.cohortCut)
	pl.unsettled.Store(s.unsettled)
	pl.dialNanos.Store(int64(s.dial))
	pl.rttNanos.Store(int64(s.rtt))
	pl.useNanos.Store(int64(s.use))
	pl.dialAt.Store(s.dialAt)
	pl.contendedUntil.Store(s.contendedUntil)
	pl.borrowPausedUntil.Store(s.borrowPausedUntil)
	return pl
}

var testRules = idleRules{
	probeAfter:   time.Second,
	maxIdle:      5 * time.Minute,
	probeTimeout: 2 * time.Second,
}

// conn stamps a connection opened age ago and idle for idle, released in
// epoch, with a lifetime of an hour from its opening.
func conn(age, idle time.Duration, epoch int64) stamps {
	return stamps{created: at(-age), idleSince: at(-idle), expiresAt: at(time.Hour - age), epoch: epoch}
}

func TestPolicyIdle(t *testing.T) {
	probe := func(timeout, hedge time.Duration) idleAnswer {
		return idleAnswer{do: idleProbe, timeout: timeout, hedge: hedge}
	}
	discard := func(why discardReason) idleAnswer { return idleAnswer{do: idleDiscard, why: why} }
	pingCapped := testRules
	pingCapped.pingTimeout = 10 * time.Millisecond
	for _, c := range []struct {
		name     string
		s        signals
		c        stamps
		r        idleRules
		doubting bool
		want     idleAnswer
	}{
		// Trusted: used within ProbeAfterIdle, this epoch, nothing pending.
		{name: "back within peekAfterIdle: hand out", c: conn(time.Minute, peekAfterIdle/2, 0), want: idleAnswer{do: idleHandOut}},
		{name: "idle past peekAfterIdle: peek", c: conn(time.Minute, 100*time.Millisecond, 0), want: idleAnswer{do: idlePeek}},
		{name: "idle just under ProbeAfterIdle: peek", c: conn(time.Minute, time.Second-1, 0), want: idleAnswer{do: idlePeek}},
		{name: "released in the current epoch: hand out", s: signals{epoch: 3}, c: conn(time.Minute, 0, 3), want: idleAnswer{do: idleHandOut}},

		// Not trusted: the caller looks at the clock and asks again.
		{name: "idle ProbeAfterIdle: doubt", c: conn(time.Minute, time.Second, 0), want: idleAnswer{do: idleDoubt}},
		{name: "released in an earlier epoch: doubt", s: signals{epoch: 1}, c: conn(time.Minute, 0, 0), want: idleAnswer{do: idleDoubt}},
		{name: "a verdict pending: doubt", s: signals{unsettled: 1}, c: conn(time.Minute, 0, 0), want: idleAnswer{do: idleDoubt}},
		{name: "idle past MaxConnIdleTime, not yet doubted: doubt", c: conn(time.Hour/2, 10*time.Minute, 0), want: idleAnswer{do: idleDoubt}},

		// Past its lifetime: discarded whether doubted or not.
		{name: "lifetime ends now", c: conn(time.Hour, 0, 0), want: discard(discardLifetime)},
		{name: "lifetime ended, doubting", c: conn(2*time.Hour, time.Minute, 0), doubting: true, want: discard(discardLifetime)},

		// Doubted: discarded unprobed, or probed.
		{name: "idle MaxConnIdleTime", c: conn(time.Hour/2, 5*time.Minute, 0), doubting: true, want: discard(discardIdle)},
		{name: "released before a long freeze", s: signals{epoch: 2, discardEpoch: 2}, c: conn(time.Minute, 10*time.Second, 1), doubting: true, want: discard(discardFreeze)},
		{name: "released in the freeze's epoch", s: signals{epoch: 2, discardEpoch: 2}, c: conn(time.Minute, 10*time.Second, 2), doubting: true, want: probe(2*time.Second, time.Second/2)},
		{name: "idle since before a failed sibling", s: signals{cohortCut: at(-5 * time.Second)}, c: conn(time.Minute, 10*time.Second, 0), doubting: true, want: discard(discardCohort)},
		{name: "idle since after a failed sibling", s: signals{cohortCut: at(-20 * time.Second)}, c: conn(time.Minute, 10*time.Second, 0), doubting: true, want: probe(2*time.Second, time.Second/2)},
		{name: "no estimates: ProbeTimeout, hedged at a quarter", c: conn(time.Minute, 10*time.Second, 0), doubting: true, want: probe(2*time.Second, time.Second/2)},
		{name: "trusted, but the hook doubts it", c: conn(time.Minute, 0, 0), doubting: true, want: probe(2*time.Second, time.Second/2)},
		{name: "a dial's time, hedged at a quarter", s: signals{dial: 40 * time.Millisecond, rtt: 5 * time.Millisecond}, c: conn(time.Minute, 10*time.Second, 0), doubting: true, want: probe(40*time.Millisecond, 10*time.Millisecond)},
		{name: "no round trip measured: half a dial stands in", s: signals{dial: 40 * time.Millisecond}, c: conn(time.Minute, 10*time.Second, 0), doubting: true, want: probe(80*time.Millisecond, 40*time.Millisecond)},
		{name: "a fast dial: the floor", s: signals{dial: time.Millisecond}, c: conn(time.Minute, 10*time.Second, 0), doubting: true, want: probe(minProbeTimeout, 1250*time.Microsecond)},
		{name: "a slow dial: ProbeTimeout", s: signals{dial: 5 * time.Second, rtt: 10 * time.Millisecond}, c: conn(time.Minute, 10*time.Second, 0), doubting: true, want: probe(2*time.Second, 500*time.Millisecond)},
		{name: "a long round trip: four of them, hedged after two", s: signals{dial: 40 * time.Millisecond, rtt: 30 * time.Millisecond}, c: conn(time.Minute, 10*time.Second, 0), doubting: true, want: probe(120*time.Millisecond, 60*time.Millisecond)},
		{name: "PingTimeout caps it", s: signals{dial: 40 * time.Millisecond, rtt: 5 * time.Millisecond}, c: conn(time.Minute, 10*time.Second, 0), r: pingCapped, doubting: true, want: probe(10*time.Millisecond, 10*time.Millisecond)},
		{name: "opened within the deadline: no hedge", s: signals{dial: 40 * time.Millisecond, rtt: 5 * time.Millisecond}, c: conn(30*time.Millisecond, 10*time.Second, 0), doubting: true, want: probe(40*time.Millisecond, 0)},
		{name: "opened a deadline ago: hedged", s: signals{dial: 40 * time.Millisecond, rtt: 5 * time.Millisecond}, c: conn(40*time.Millisecond, 10*time.Second, 0), doubting: true, want: probe(40*time.Millisecond, 10*time.Millisecond)},
	} {
		r := c.r
		if r == (idleRules{}) {
			r = testRules
		}
		if got := c.s.policy().idle(t0, &c.c, &r, c.doubting); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// The moves that follow trouble change the idle answer as their contracts
// say: a sign of trouble has every idle connection doubted; a failed
// probe discards the connections that idled longer than it; a freeze has
// every idle connection doubted, and discarded when it outlasted the
// path's idle timeout.
func TestPolicyTroubleMovesEpochs(t *testing.T) {
	older, younger := conn(time.Hour/2, 20*time.Second, 0), conn(time.Hour/2, 500*time.Millisecond, 0)
	ask := func(pl *policy, c stamps, doubting bool) idleAnswer { return pl.idle(t0, &c, &testRules, doubting) }

	pl := signals{}.policy()
	if got := ask(pl, younger, false).do; got != idlePeek {
		t.Fatalf("before any trouble: %d, want peek", got)
	}
	pl.distrust()
	if got := ask(pl, younger, false).do; got != idleDoubt {
		t.Fatalf("after distrust: %d, want doubt", got)
	}

	pl = signals{}.policy()
	pl.condemnCohort(at(-10 * time.Second)) // a connection idle 10 s failed its probe
	if got := ask(pl, older, true); got.do != idleDiscard || got.why != discardCohort {
		t.Errorf("idled longer than the failed one: %+v, want discard (cohort)", got)
	}
	if got := ask(pl, younger, false).do; got != idleDoubt {
		t.Errorf("idled less than the failed one: %d, want doubt", got)
	}
	if got := ask(pl, younger, true).do; got != idleProbe {
		t.Errorf("idled less than the failed one, doubted: %d, want probe", got)
	}

	pl = signals{}.policy()
	if pl.froze(30*time.Second, time.Minute) {
		t.Error("a freeze shorter than the path's idle timeout discards")
	}
	if got := ask(pl, younger, true).do; got != idleProbe {
		t.Errorf("after a short freeze: %d, want probe", got)
	}
	if !pl.froze(2*time.Minute, time.Minute) {
		t.Error("a freeze past the path's idle timeout does not discard")
	}
	if got := ask(pl, younger, true); got.do != idleDiscard || got.why != discardFreeze {
		t.Errorf("after a long freeze: %+v, want discard (freeze)", got)
	}
	if pl.froze(time.Hour, 0) {
		t.Error("with no path idle timeout known, a freeze discards")
	}
}

// Orphans are ended through a connection trusted without a probe; the
// maintainer's worker, which may probe, also through one a checkout would
// probe and hand out.
func TestPolicyEndsOrphans(t *testing.T) {
	for _, c := range []struct {
		name              string
		s                 signals
		c                 stamps
		drain, maintainer bool
	}{
		{name: "trusted", c: conn(time.Minute, 100*time.Millisecond, 0), drain: true, maintainer: true},
		{name: "idle past ProbeAfterIdle", c: conn(time.Minute, 10*time.Second, 0), maintainer: true},
		{name: "a verdict pending", s: signals{unsettled: 1}, c: conn(time.Minute, 0, 0), maintainer: true},
		{name: "idle MaxConnIdleTime", c: conn(time.Hour/2, 5*time.Minute, 0)},
		{name: "released in an earlier epoch", s: signals{epoch: 1}, c: conn(time.Minute, 0, 0)},
		{name: "released before a long freeze", s: signals{epoch: 2, discardEpoch: 2}, c: conn(time.Minute, time.Second, 1)},
		{name: "idle since before a failed sibling", s: signals{epoch: 1, cohortCut: at(-5 * time.Second)}, c: conn(time.Minute, 10*time.Second, 0)},
	} {
		pl := c.s.policy()
		idle := time.Duration(t0 - c.c.idleSince)
		if got := pl.endsOrphans(idle, &c.c, &testRules, false); got != c.drain {
			t.Errorf("%s, without a probe (the drain): %v, want %v", c.name, got, c.drain)
		}
		if got := pl.endsOrphans(idle, &c.c, &testRules, true); got != c.maintainer {
			t.Errorf("%s, probing (the maintainer): %v, want %v", c.name, got, c.maintainer)
		}
	}
}

// A connection closed from idle is overdue once it idled a tick past
// MaxConnIdleTime: a sweep on time closes it within that tick.
func TestPolicyOverdue(t *testing.T) {
	r := testRules
	r.tick = time.Second
	pl := signals{}.policy()
	for _, c := range []struct {
		idle time.Duration
		want bool
	}{
		{time.Minute, false},
		{r.maxIdle, false},
		{r.maxIdle + r.tick - 1, false},
		{r.maxIdle + r.tick, true},
		{time.Hour, true},
	} {
		if got := pl.overdue(c.idle, &r); got != c.want {
			t.Errorf("idle %v: overdue %v, want %v", c.idle, got, c.want)
		}
	}
}

func TestPolicyDialOrWait(t *testing.T) {
	const ms = time.Millisecond
	fresh := signals{dial: 200 * ms, use: 100 * ms, dialAt: at(-100 * ms)} // a borrower serves a caller in half a dial
	contended := fresh
	contended.contendedUntil = at(time.Second)
	free := dialFacts{total: 2, busy: 1, waiting: 1, slotFree: true}
	with := func(f func(*dialFacts)) dialFacts { d := free; f(&d); return d }
	dial := dialAnswer{do: dialNow}
	for _, c := range []struct {
		name string
		s    signals
		f    dialFacts
		want dialAnswer
	}{
		// The server is full: a pool beyond its fair share waits for its own.
		{"beyond the fair share while contended", contended, with(func(f *dialFacts) { f.fairShare, f.total = 4, 5 }),
			dialAnswer{do: awaitContention, until: at(time.Second)}},
		{"beyond the fair share, patience spent, no slot", contended, with(func(f *dialFacts) { f.fairShare, f.total, f.patienceSpent, f.slotFree = 4, 5, true, false }),
			dialAnswer{do: awaitContention, until: at(time.Second)}},
		{"at the fair share while contended: the return beats a dial", contended, with(func(f *dialFacts) { f.fairShare, f.total = 4, 4 }),
			dialAnswer{do: awaitReturn, until: at(400 * ms)}},
		{"beyond the fair share once the contention ended", signals{contendedUntil: t0}, with(func(f *dialFacts) { f.fairShare, f.total = 4, 5 }), dial},
		{"no fair share: never contended", signals{contendedUntil: at(time.Second)}, with(func(f *dialFacts) { f.total = 50 }), dial},

		// A lease just ended (budget slots): no borrowing for a moment.
		{"beyond the fair share, borrowing paused", signals{borrowPausedUntil: at(100 * ms)}, with(func(f *dialFacts) { f.fairShare, f.total = 4, 5 }),
			dialAnswer{do: awaitContention, until: at(100 * ms)}},
		{"at the fair share, borrowing paused", signals{borrowPausedUntil: at(100 * ms)}, with(func(f *dialFacts) { f.fairShare, f.total = 4, 4 }), dial},
		{"beyond the fair share once the pause ended", signals{borrowPausedUntil: t0}, with(func(f *dialFacts) { f.fairShare, f.total = 4, 5 }), dial},

		// A borrowed connection comes back within two dials' time.
		{"one caller, one borrower, half a dial each", fresh, free, dialAnswer{do: awaitReturn, until: at(400 * ms)}},
		{"the return beats a dial, no slot free", fresh, with(func(f *dialFacts) { f.slotFree = false }), dialAnswer{do: awaitReturn, until: at(400 * ms)}},
		{"just within two dials", fresh, with(func(f *dialFacts) { f.busy, f.waiting = 2, 7 }), dialAnswer{do: awaitReturn, until: at(400 * ms)}},
		{"exactly two dials: dial", fresh, with(func(f *dialFacts) { f.busy, f.waiting = 2, 8 }), dial},
		{"four callers per borrower: dial", fresh, with(func(f *dialFacts) { f.waiting = 4 }), dial},
		{"patience spent: dial", fresh, with(func(f *dialFacts) { f.patienceSpent = true }), dial},
		{"none borrowed: dial", fresh, with(func(f *dialFacts) { f.busy = 0 }), dial},
		{"no use measured: dial", signals{dial: 200 * ms, dialAt: at(-100 * ms)}, free, dial},
		{"no dial measured: dial", signals{use: 100 * ms}, free, dial},
		{"the dial estimate is stale: dial", signals{dial: 200 * ms, use: 100 * ms, dialAt: at(-estimateFresh - ms)}, free, dial},
		{"the dial estimate is estimateFresh old: wait", signals{dial: 200 * ms, use: 100 * ms, dialAt: at(-estimateFresh)}, free, dialAnswer{do: awaitReturn, until: at(400 * ms)}},

		// Every dial slot is taken.
		{"no slot free", signals{}, with(func(f *dialFacts) { f.slotFree = false }), dialAnswer{do: awaitDialSlot}},
		{"patience spent, no slot free", fresh, with(func(f *dialFacts) { f.patienceSpent, f.slotFree = true, false }), dialAnswer{do: awaitDialSlot}},
	} {
		if got := c.s.policy().dialOrWait(t0, c.f); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// A 53300 holds a pool with a fair share to it for contentionHold.
func TestPolicyServerFullHoldsTheFairShare(t *testing.T) {
	pl := signals{}.policy()
	beyond := dialFacts{total: 5, fairShare: 4, slotFree: true}
	pl.serverFull(t0)
	for _, c := range []struct {
		now  int64
		want dialAction
	}{
		{t0, awaitContention},
		{at(contentionHold - 1), awaitContention},
		{at(contentionHold), dialNow},
	} {
		if got := pl.dialOrWait(c.now, beyond).do; got != c.want {
			t.Errorf("%v after the 53300: %d, want %d", time.Duration(c.now-t0), got, c.want)
		}
		if got := pl.contended(c.now); got != (c.want == awaitContention) {
			t.Errorf("%v after the 53300: contended %v", time.Duration(c.now-t0), got)
		}
	}
}
