package runpool

import "time"

// pathVerdict is what a connection that came back unusable says of the
// path to the server.
type pathVerdict int8

const (
	// pathTrouble: the connection failed; its idle siblings shared its
	// path and must prove themselves, and its session may live on.
	pathTrouble pathVerdict = iota
	// pathSound: its caller gave it up, and the server answered after
	// that; the connection alone is lost.
	pathSound
	// pathUnsure: the server's answer may still come.
	pathUnsure
)

// interruptVerdict decides at now what a connection's interruption in
// says of the path, the server being given grace after the interruption
// to answer. A connection that broke without an interruption, failed
// after it, or got no answer within grace is trouble on the path, as a
// failed probe is: a cancel request that got through proves nothing, as
// it travels on a path of its own (after a NAT failover a new flow
// reaches the server while the old ones are dead).
func interruptVerdict(in Interruption, now time.Time, grace time.Duration) pathVerdict {
	if in.At.IsZero() {
		return pathTrouble
	}
	limit := in.At.Add(grace)
	answered := !in.Answered.IsZero() && !in.Answered.After(limit) && (in.Failed.IsZero() || in.Answered.Before(in.Failed))
	switch {
	case answered:
		return pathSound
	case !in.Failed.IsZero() || !in.Answered.IsZero() || !now.Before(limit):
		return pathTrouble
	}
	return pathUnsure
}

// cancelGrace is how long an interrupted connection is given to show
// that the server still answers on its path: the driver's cancel request
// opens a connection of its own (a dial), its goodbye takes a round trip
// more; two dials and a probe's deadline (itself at least a few round
// trips of this path) leave a margin for a loaded server.
func (s *estimates) cancelGrace(limit time.Duration) time.Duration {
	return 2*s.dialNanosOrZero() + s.probeTimeout(limit)
}

// settleInterrupted waits, in its own goroutine, for the verdict on e,
// which its caller's context interrupted (in) and checkIn is closing.
// Until the verdict no idle connection is trusted without a probe: the
// path is in doubt. Trouble then condemns e's idle siblings and notes its
// session as an orphan, as a connection found broken would; an answer
// from the server costs nothing more.
func (p *Pool[C]) settleInterrupted(e *entry[C], in Interruption) {
	p.policy.unsettled.Add(1)
	grace := p.policy.cancelGrace(p.cfg.ProbeTimeout)
	go func() {
		defer p.policy.unsettled.Add(-1)
		timer := time.NewTimer(time.Until(in.At.Add(grace)))
		defer timer.Stop()
		v := interruptVerdict(in, time.Now(), grace)
		for v == pathUnsure {
			select {
			case in = <-in.Settled:
			case <-timer.C:
			}
			v = interruptVerdict(in, time.Now(), grace)
		}
		if v == pathSound {
			p.cfg.Logger.Debug("runpool: interrupted connection closed, the server answered", "pool", p.cfg.Name,
				"answered_after", in.Answered.Sub(in.At).Round(time.Microsecond), "grace", grace.Round(time.Microsecond))
			return
		}
		p.policy.distrust() // its siblings may be dead too
		if p.ender != nil {
			if o, ok := p.ender.Session(e.conn); ok {
				p.orphans.add(notedOrphan{Orphan: o, at: nanotime()})
			}
		}
		p.cfg.Logger.Info("runpool: interrupted connection got no answer from the server: probing idle connections",
			"pool", p.cfg.Name, "grace", grace.Round(time.Microsecond), "failed", !in.Failed.IsZero())
	}()
}
