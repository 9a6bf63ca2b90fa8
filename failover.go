package runpool

import (
	"sync/atomic"
	"time"

	"github.com/jackc/puddle/v2"
)

// Failover. When the server behind the pool's name changes role (a
// writer demoted to a reader, or turned read-only, and the name moved to
// the new writer), the connections opened to the old writer stay open and
// answer probes: only a write tells, refused with 25006 (read-only
// transaction). A new trust epoch alone would not do, since every one of
// them passes its probe. So the first connection the connector reports
// demoted (ServerWitness) condemns the connections opened before it to
// the same server: the idle ones are discarded at once, the borrowed ones
// as they come back. Connections to another server (a multi-host DSN, the
// new writer already) are kept, and must prove themselves (a new trust
// epoch), their probe failing when their own server turned read-only.
// The next dial resolves the name afresh: neither runpool nor Go caches
// an address (pgx looks the host up on every dial).

// ServerWitness is an optional interface for a Connector that can tell,
// without I/O, what the server said of a connection's session in its
// last answers.
type ServerWitness[C any] interface {
	// Demoted reports that c's server refused a write because it turned
	// read-only under c (25006 from a server that accepted writes when c
	// or a sibling was opened): the name's server changed role.
	Demoted(c C) bool
	// EndedIdle reports that the server ended c's session because it
	// idled (57P05, idle_session_timeout): routine, not path trouble.
	EndedIdle(c C) bool
}

// failover is the pool's record of the last demotion it noticed.
type failover struct {
	// cut (nanotime): a connection opened before it to the demoted
	// server is discarded; 0 before any demotion.
	cut atomic.Int64
	// server is the demoted server (Orphan.Server); nil when the
	// connector cannot tell servers apart: every connection opened
	// before cut is then discarded.
	server atomic.Pointer[time.Time]
	// demotions counts the demotions noticed; discards the connections
	// closed for one.
	demotions, discards atomic.Int64
}

// roleChanged is checkIn's look at a connection coming back reusable: it
// reports, having closed it, that the connection is on a server that
// turned read-only (demoted). The common case costs an atomic load and a
// compare.
func (p *Pool[C]) roleChanged(res *puddle.Resource[*entry[C]], e *entry[C]) bool {
	switch {
	case p.said != nil && p.said.Demoted(e.conn):
		p.demoted(e)
	case e.created < p.fo.cut.Load() && p.onDemotedServer(e):
		p.fo.discards.Add(1)
	default:
		return false
	}
	e.routine.Store(true) // closed with a goodbye its live server reads: no orphan
	p.destroy(res)
	return true
}

// demoted acts on e found demoted: the connections opened until now to
// its server are condemned and the idle ones discarded at once, so that
// the caller's retry dials (the name resolved afresh) instead of taking a
// sibling that would refuse its write too; the others must prove
// themselves.
func (p *Pool[C]) demoted(e *entry[C]) {
	server, known := p.serverOf(e)
	if known {
		p.fo.server.Store(&server)
	} else {
		p.fo.server.Store(nil)
	}
	raise(&p.fo.cut, nanotime())
	p.policy.distrust()
	p.fo.demotions.Add(1)
	p.fo.discards.Add(1)
	n := 0
	for _, res := range p.p.AcquireAllIdle() {
		if s := res.Value(); p.onDemotedServer(s) {
			s.routine.Store(true)
			n++
			res.Destroy()
			continue
		}
		res.ReleaseUnused()
	}
	p.fo.discards.Add(int64(n))
	p.cfg.Logger.Warn("runpool: the server refused a write as read-only (failover): discarding its connections; new ones resolve the name afresh",
		"pool", p.cfg.Name, "idle_discarded", n)
}

// onDemotedServer reports whether e was opened before the last demotion
// to the demoted server (or to any server, when servers cannot be told
// apart).
func (p *Pool[C]) onDemotedServer(e *entry[C]) bool {
	if e.created >= p.fo.cut.Load() {
		return false
	}
	want := p.fo.server.Load()
	if want == nil {
		return true
	}
	s, ok := p.serverOf(e)
	return !ok || s.Equal(*want)
}

// serverOf identifies e's server (the start of its postmaster), when the
// connector can tell (OrphanEnder, also behind a pooler, where it
// cannot).
func (p *Pool[C]) serverOf(e *entry[C]) (time.Time, bool) {
	ender, ok := p.connector.(OrphanEnder[C])
	if !ok {
		return time.Time{}, false
	}
	o, ok := ender.Session(e.conn)
	return o.Server, ok
}

// endedIdle reports that the server ended e's session for idling
// (57P05): the pool closes it as routine, with no new trust epoch and no
// orphan to end, and counts it as idle expiry.
func (p *Pool[C]) endedIdle(e *entry[C]) bool {
	if p.said == nil || !p.said.EndedIdle(e.conn) {
		return false
	}
	p.counters.idleExpired.Add(1)
	e.routine.Store(true)
	e.dead.Store(true)
	return true
}
