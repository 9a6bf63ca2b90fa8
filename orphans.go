package runpool

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/puddle/v2"
)

// Orphaned sessions. A connection the pool gives up as dead (a probe
// that went unanswered, a freeze longer than the path's idle timeout, a
// cohort condemned by a sibling) may be dead only on this side: behind a
// NAT that forgot the flow, the server's backend waits for a client that
// will never write again, and holds a max_connections slot until the
// server's idle_session_timeout or keepalives end it, a minute or hours
// later. Every instance of a service thawing at once after a NAT timeout
// leaves as many orphans as it had idle connections, and the next
// scale-out meets 53300. So the pool notes each such connection's server
// session exactly (the server and the session on it, as the server
// reported them at connect time) and ends the ones still there through a
// live connection of its own on the same server: the next one it dials
// (endOrphansOnDial), or an idle one at the maintainer's next tick, or at
// the start of a drain.

// Orphan identifies one server session exactly, as the server itself
// reported it when the connection was opened: the server it is on and the
// session's PID and start there. One name can lead to several servers (a
// load balancer over replicas, a multi-host DSN after a failover), where
// other instances of the service log in as the same role at the same
// moments, and no clock of this machine enters the match, so neither a
// PID the server reused, nor the same PID on another server, nor clock
// skew makes another session match.
type Orphan struct {
	PID    uint32
	Began  time.Time // the session's backend_start
	Server time.Time // when the server (its postmaster) started: tells servers behind one address apart
}

// OrphanEnder is an optional interface for a Connector whose server
// sessions the pool can identify and end. Session returns c's session as
// recorded when c was opened (false when unknown: it is left to the
// server's own timeouts). EndOrphans ends, through the live connection
// via, the sessions among orphans that are on via's server and there
// still, with the same PID and start, idle and of via's session user
// (pg_terminate_backend), and returns how many it ended.
type OrphanEnder[C any] interface {
	Session(c C) (Orphan, bool)
	EndOrphans(ctx context.Context, via C, orphans []Orphan) (int, error)
}

// orphanKeep is how long a session noted on a server no live connection
// reaches is looked for again at later ticks: past it the server's own
// reclaim (idle_session_timeout, its keepalives) has ended it.
const orphanKeep = 5 * time.Minute

// orphansTimeout bounds the query that ends orphaned sessions, in time
// the process ran (withRunningTimeout).
const orphansTimeout = time.Second

// maxOrphans bounds the list between ticks; a wave larger than this keeps
// the rest for the server's own timeouts.
const maxOrphans = 1024

// orphans is the list of sessions to end at the next dial or tick.
type orphans struct {
	mu   sync.Mutex // guards list
	list []notedOrphan
}

type notedOrphan struct {
	Orphan
	at int64 // nanotime when noted
}

func (o *orphans) add(x notedOrphan) {
	o.mu.Lock()
	if len(o.list) < maxOrphans {
		o.list = append(o.list, x)
	}
	o.mu.Unlock()
}

func (o *orphans) take() []notedOrphan {
	o.mu.Lock()
	l := o.list
	o.list = nil
	o.mu.Unlock()
	return l
}

// keep notes list again at now, but for the sessions noted orphanKeep
// or longer ago.
func (o *orphans) keep(list []notedOrphan, now int64) {
	for _, x := range list {
		if time.Duration(now-x.at) < orphanKeep {
			o.add(x)
		}
	}
}

// on returns the sessions of list on server (by its start) and notes the
// others again (keep).
func (o *orphans) on(server time.Time, list []notedOrphan, now int64) []notedOrphan {
	var mine, rest []notedOrphan
	for _, x := range list {
		if x.Server.Equal(server) {
			mine = append(mine, x)
		} else {
			rest = append(rest, x)
		}
	}
	o.keep(rest, now)
	return mine
}

// noteOrphan records e's session when its server side may live on after
// the close: e is closed as dead, or the path was in doubt since e was
// last released (a freeze, a sibling found dead: the trust epoch moved
// on), so the goodbye a close sends may vanish too. The maintainer
// closing connections idle past their limit right after a thaw is the
// common case. A session that did end is simply not found.
func (p *Pool[C]) noteOrphan(e *entry[C]) {
	if p.ender == nil || !p.orphanOnClose(e) {
		return
	}
	if o, ok := p.ender.Session(e.conn); ok {
		p.orphans.add(notedOrphan{Orphan: o, at: nanotime()})
	}
}

// orphanOnClose reports whether noteOrphan notes e's session as it closes.
func (p *Pool[C]) orphanOnClose(e *entry[C]) bool {
	return !e.routine.Load() && (e.dead.Load() || e.epoch != p.policy.epoch.Load())
}

// noteOverdue notes, as the pool closes it from idle at now, the session
// of a connection idle so long past MaxConnIdleTime that its flow may be
// gone (policy.overdue), and with it the goodbye its close sends. One
// noteOrphan notes as it closes (dead, or released before the epoch moved
// on) is left to it.
func (p *Pool[C]) noteOverdue(e *entry[C], now int64) {
	if p.ender == nil || e.routine.Load() || p.orphanOnClose(e) || !p.policy.overdue(time.Duration(now-e.idleSince), &p.rules) {
		return
	}
	if o, ok := p.ender.Session(e.conn); ok {
		p.orphans.add(notedOrphan{Orphan: o, at: now})
	}
}

// noteDoubted notes, as the drain closes it, the session of an idle
// connection the pool would not trust without a probe that noteOrphan
// would not note (released in the current epoch): its flow may be gone,
// and with it the goodbye its close sends. The drain's last step ends the
// noted sessions (endLeftOrphans); one that did end is simply not found.
func (p *Pool[C]) noteDoubted(e *entry[C], now int64) {
	if p.ender == nil || e.epoch != p.policy.epoch.Load() || p.policy.trusted(time.Duration(now-e.idleSince), &e.stamps, p.rules.probeAfter) {
		return
	}
	if o, ok := p.ender.Session(e.conn); ok {
		p.orphans.add(notedOrphan{Orphan: o, at: now})
	}
}

// endOrphans ends the noted sessions on the server of an idle connection
// the pool may end them through (policy.endsOrphans; mayProbe: also one a
// checkout would probe first, the most recently used), within ctx and
// orphansTimeout; with none at hand, they wait for the next tick, and
// those on another server wait (up to orphanKeep) for a tick that finds a
// connection to theirs. Sessions the server ended meanwhile simply do not
// match.
func (p *Pool[C]) endOrphans(ctx context.Context, mayProbe bool) {
	if p.ender == nil {
		return
	}
	list := p.orphans.take()
	if len(list) == 0 {
		return
	}
	// The via connection: the most recently released one the policy
	// allows, which is a trusted one when any is (both kinds are of the
	// current epoch, and trust is the shorter idle time).
	var via *puddle.Resource[*entry[C]]
	var here Orphan
	now := nanotime()
	for _, res := range p.p.AcquireAllIdle() {
		e := res.Value()
		if (via == nil || e.idleSince > via.Value().idleSince) &&
			p.policy.endsOrphans(time.Duration(now-e.idleSince), &e.stamps, &p.rules, mayProbe) {
			if s, ok := p.ender.Session(e.conn); ok {
				if via != nil {
					via.ReleaseUnused()
				}
				via, here = res, s
				continue
			}
		}
		res.ReleaseUnused()
	}
	if via == nil {
		p.orphans.keep(list, now)
		return
	}
	mine := p.orphans.on(here.Server, list, now)
	if len(mine) == 0 {
		via.ReleaseUnused()
		return
	}
	ctx, cancel := withRunningTimeout(ctx, orphansTimeout)
	p.endSessions(ctx, via.Value().conn, mine)
	cancel()
	if p.connector.Reusable(via.Value().conn) {
		via.ReleaseUnused()
	} else {
		via.Value().dead.Store(true)
		via.Destroy()
	}
}

// endLeftOrphans is the drain's last step: it ends the noted sessions
// that no trusted connection was at hand to end, through a connection it
// dials for the purpose and closes after, within ctx and orphansTimeout.
// At a drain after a freeze every idle connection is in doubt, and the
// sessions behind flows a NAT forgot would otherwise keep their server
// slots after the process is gone, until the server's keepalives end
// them. Sessions on another server than the one the dial reaches are
// left to those keepalives.
func (p *Pool[C]) endLeftOrphans(ctx context.Context) {
	if p.ender == nil || ctx.Err() != nil {
		return
	}
	list := p.orphans.take()
	if len(list) == 0 {
		return
	}
	ctx, cancel := withRunningTimeout(ctx, orphansTimeout)
	defer cancel()
	c, err := p.connector.Connect(ctx)
	if err != nil {
		p.cfg.Logger.Warn("runpool: cannot end orphaned sessions", "pool", p.cfg.Name, "sessions", len(list), "err", err)
		return
	}
	defer p.connector.Close(c, false)
	p.endNoted(ctx, c, list)
}

// endOrphansOnDial ends the noted sessions on c's server through c, just
// dialled, before it serves: after a freeze, the orphans of the
// connections the thaw gave up hold server slots (with BudgetSlots, the
// service's own budget slots) that the burst's next dials need at once,
// not at the next tick. It costs that one dial a round trip, within the
// dial's own deadline (ctx: DialTimeout, not orphansTimeout, which a
// distant server's round trip may exceed), and only while sessions are
// noted. It reports whether c is still usable.
func (p *Pool[C]) endOrphansOnDial(ctx context.Context, c C) bool {
	if p.ender == nil {
		return true
	}
	list := p.orphans.take()
	if len(list) == 0 {
		return true
	}
	p.endNoted(ctx, c, list)
	return p.connector.Reusable(c)
}

// endNoted ends the sessions of list, taken from the noted ones, that
// are on c's server through c (endSessions), and notes the others again
// (orphans.keep).
func (p *Pool[C]) endNoted(ctx context.Context, c C, list []notedOrphan) {
	now := nanotime()
	here, ok := p.ender.Session(c)
	if !ok {
		p.orphans.keep(list, now)
		return
	}
	if mine := p.orphans.on(here.Server, list, now); len(mine) > 0 {
		p.endSessions(ctx, c, mine)
	}
}

// endSessions ends the sessions listed through c, and counts and logs
// what it did. When it cannot (c turned out dead too), the sessions stay
// noted for the next attempt, up to orphanKeep after they were noted.
func (p *Pool[C]) endSessions(ctx context.Context, c C, noted []notedOrphan) {
	list := make([]Orphan, len(noted))
	for i, o := range noted {
		list[i] = o.Orphan
	}
	n, err := p.ender.EndOrphans(ctx, c, list)
	if err != nil {
		p.orphans.keep(noted, nanotime())
		p.cfg.Logger.Warn("runpool: cannot end orphaned sessions", "pool", p.cfg.Name, "sessions", len(list), "err", err)
		return
	}
	p.counters.orphansEnded.Add(int64(n))
	level := slog.LevelDebug // every noted session had ended by itself
	if n > 0 {
		level = slog.LevelInfo
		p.m.orphans.Add(context.Background(), int64(n), p.m.add...)
	}
	p.cfg.Logger.Log(context.Background(), level, "runpool: ended orphaned sessions", "pool", p.cfg.Name, "ended", n, "noted", len(list))
}
