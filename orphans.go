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
// session and, at the maintainer's next tick (and at the start of a
// drain), ends the ones still there through a live connection of its own.

// Orphan identifies a server session the pool gave up as dead: its
// backend process ID and the window of the pool's wall clock in which the
// session began (the dial, widened by orphanClockSkew for the server's
// clock). A backend matches only with the same PID, the same session user,
// idle, and begun within the window, so a PID the server reused for
// another session is never ended.
type Orphan struct {
	PID      uint32
	From, To time.Time
}

// OrphanEnder is an optional interface for a Connector whose server
// sessions the pool can identify and end. SessionPID returns c's backend
// process ID (0 when unknown). EndOrphans ends, through the live
// connection via, the sessions among orphans that are still there, idle,
// of via's session user and begun within their windows
// (pg_terminate_backend), and returns how many it ended.
type OrphanEnder[C any] interface {
	SessionPID(c C) uint32
	EndOrphans(ctx context.Context, via C, orphans []Orphan) (int, error)
}

// orphanClockSkew widens an orphan's window for the difference between
// this machine's clock and the server's.
const orphanClockSkew = 10 * time.Second

// orphansTimeout bounds the query that ends orphaned sessions.
const orphansTimeout = time.Second

// maxOrphans bounds the list between ticks; a wave larger than this keeps
// the rest for the server's own timeouts.
const maxOrphans = 1024

// orphans is the list of sessions to end at the next tick.
type orphans struct {
	mu   sync.Mutex // guards list
	list []Orphan
}

func (o *orphans) add(x Orphan) {
	o.mu.Lock()
	if len(o.list) < maxOrphans {
		o.list = append(o.list, x)
	}
	o.mu.Unlock()
}

func (o *orphans) take() []Orphan {
	o.mu.Lock()
	l := o.list
	o.list = nil
	o.mu.Unlock()
	return l
}

// noteOrphan records e's session when its server side may live on after
// the close: e is closed as dead, or the path was in doubt since e was
// last released (a freeze, a sibling found dead: Pool.gen moved on), so
// the goodbye a close sends may vanish too. The maintainer closing
// connections idle past their limit right after a thaw is the common
// case. A session that did end is simply not found.
func (p *Pool[C]) noteOrphan(e *entry[C]) {
	if p.ender == nil || e.dialedFrom == 0 || (!e.dead.Load() && e.gen == p.gen.Load()) {
		return
	}
	if pid := p.ender.SessionPID(e.conn); pid != 0 {
		p.orphans.add(Orphan{
			PID:  pid,
			From: time.Unix(0, e.dialedFrom).Add(-orphanClockSkew),
			To:   time.Unix(0, e.dialedTo).Add(orphanClockSkew),
		})
	}
}

// endOrphans ends the noted sessions through an idle connection the pool
// trusts without a probe; with none at hand, they wait for the next tick.
// Sessions the server ended meanwhile simply do not match.
func (p *Pool[C]) endOrphans() {
	if p.ender == nil {
		return
	}
	list := p.orphans.take()
	if len(list) == 0 {
		return
	}
	var via *puddle.Resource[*entry[C]]
	for _, res := range p.p.AcquireAllIdle() {
		e := res.Value()
		if via == nil && p.trusted(time.Duration(nanotime()-e.idleSince), e) {
			via = res
			continue
		}
		res.ReleaseUnused()
	}
	if via == nil {
		for _, o := range list {
			p.orphans.add(o)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), orphansTimeout)
	n, err := p.ender.EndOrphans(ctx, via.Value().conn, list)
	cancel()
	if p.connector.Reusable(via.Value().conn) {
		via.ReleaseUnused()
	} else {
		via.Value().dead.Store(true)
		via.Destroy()
	}
	if err != nil {
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
