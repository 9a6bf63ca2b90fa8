package pgxconn

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The pass (runpool's slots.go): the one backend of an instance the
// budget allows without a slot. A dial holds it from before the socket
// opens until its session holds a slot. The instance's only connection
// keeps it and takes no slot, unless another dial already waits, so an
// idle instance holds none of the slots; so does a connection whose dial
// found every slot held. Dials
// therefore run one at a time. A dial that finds the pass held by a
// connection waits for that connection to try for a slot at its next
// checkout (passWait at most), and fails at once when its last try found
// none, less than passWait ago, without opening a backend.

// seekEvery bounds how often the connection holding the pass tries for
// a slot again after a try found none: each try is a round trip on a
// caller's checkout, and a slot frees when another connection of the
// service closes, which borrowed connections do within their lease.
const seekEvery = 20 * time.Millisecond

// passWait bounds a dial's wait for the connection holding the pass to
// try for a slot: it tries at its next checkout, which a long
// transaction may hold off.
const passWait = time.Second

// pass is an instance's pass.
type pass struct {
	slots slots // the key space the slots are in

	// holderNow is holder, written under mu, for a look without it: at
	// every checkout the pool asks whether the connection holds the pass
	// (seekDue), and most connections hold a slot instead.
	holderNow atomic.Pointer[Conn]

	mu      sync.Mutex // guards the fields below
	dialing bool       // a dial holds the pass
	holder  *Conn      // the connection without a slot holding it, nil for none
	// full: the holder's last try for a slot (its dial's or a probe's),
	// made at tried, found none free; tried is zero before it tried.
	full  bool
	tried time.Time
	// trying: the holder's probe is trying for a slot (seeking), until it
	// records the outcome (sought) or the holder gives the pass up.
	// unsettled: the holder's dial found every slot held and the pool has
	// not settled that finding yet (settle): ending orphaned sessions
	// through the new connection may free slots.
	trying, unsettled bool
	// wanted: another dial waited or was refused since the dial holding
	// the pass began, or since the holder's last try; seek: the holder's
	// next probe tries for a slot (seekDue said so).
	wanted, seek bool
	// untried: the holder was dialled as the instance's only connection,
	// or gave its slot back as it (yieldTo), and has not tried for a slot
	// since; its first checkout does (seekDue).
	untried bool
	// othersWait: the last try that found no slot free and looked
	// (lookedAt) saw another instance's want mark (mark.go).
	othersWait bool
	lookedAt   time.Time
	// below is the pool's (Connector.WatchShare): the instance holds
	// fewer connections than its fair share and callers want more; nil
	// until set.
	below   func() bool
	changed chan struct{} // closed, and replaced, at every change of the above
}

func newPass(s slots) *pass { return &pass{slots: s, changed: make(chan struct{})} }

// changedLocked wakes the dials waiting in take.
func (p *pass) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// take takes the pass for a dial. It waits while another dial holds it,
// and while a connection that has not tried for a slot holds it, up to
// passWait; it reports false when a connection whose last try found no
// slot holds it, or still holds it after the wait.
func (p *pass) take(ctx context.Context) (bool, error) {
	var expired <-chan time.Time
	for {
		p.mu.Lock()
		switch {
		case p.holder == nil && !p.dialing:
			p.dialing, p.wanted = true, false
			p.mu.Unlock()
			return true, nil
		case p.dialing:
			p.wanted = true
		case p.holder != nil:
			p.wanted = true
			if p.fullLocked() {
				p.mu.Unlock()
				return false, nil
			}
			if expired == nil {
				t := time.NewTimer(passWait)
				defer t.Stop()
				expired = t.C
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-expired:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// dialEnded ends the dial's hold: the pass goes to c, the dial's
// connection without a slot (full: its setup tried for one and found
// none), or back when c is nil.
func (p *pass) dialEnded(c *Conn, full bool, try tried) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing = false
	p.holdLocked(c, full)
	p.untried = c != nil && !full
	p.unsettled = c != nil && full
	p.lookedLocked(try)
}

// lookedLocked records whether try saw another instance's want mark,
// when it looked.
func (p *pass) lookedLocked(try tried) {
	if try.looked {
		p.othersWait = try.waits
	}
}

// lookDue reports whether a try for a slot made now is to read whether
// another instance waits (lookEvery), and if so counts it as made.
func (p *pass) lookDue() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.lookedAt) < lookEvery {
		return false
	}
	p.lookedAt = time.Now()
	return true
}

// holdLocked gives the pass to c (nil: gives it back), whose last try
// for a slot, made now, found none free (full) or who has not tried.
func (p *pass) holdLocked(c *Conn, full bool) {
	p.holder, p.full, p.tried, p.untried, p.trying, p.unsettled = c, full, time.Time{}, false, false, false
	p.holderNow.Store(c)
	if full {
		p.tried = time.Now()
	}
	p.changedLocked()
}

// fullLocked reports whether the holder's last try for a slot, ended and
// settled, found none free less than passWait ago. While a try is under
// way, or a dial's finding awaits the pool (settle), the finding is yet
// to be made; an older one is out of date (the instance was frozen
// since, or the holder kept out that long). A dial then waits for the
// holder's next try, as for a holder that has not tried, rather than
// fail at once and hold the pool to its fair share on a full budget that
// may be long gone.
func (p *pass) fullLocked() bool {
	return p.full && !p.trying && !p.unsettled && time.Since(p.tried) < passWait
}

// orphansEnded follows the end of orphaned sessions of the instance's
// (runpool's orphans.go), which may have held slots: a try of the
// holder's that found every slot held is out of date, so the holder
// tries again at its next checkout, and the dials wait for that try.
func (p *pass) orphansEnded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder != nil && p.full {
		p.full, p.tried, p.untried = false, time.Time{}, true
		p.changedLocked()
	}
}

// recentlyFullLocked reports whether the holder's last try for a slot
// found none free less than seekEvery ago.
func (p *pass) recentlyFullLocked() bool {
	return p.full && time.Since(p.tried) < seekEvery
}

// yieldTo gives the pass, when free, to c, which holds a slot it is
// about to give back (yieldSlot); it reports whether c holds the pass.
// c is then untried: its next checkout tries for a slot, as a fresh
// instance's only connection's does, since a quiet instance's next
// request may open a burst too.
func (p *pass) yieldTo(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dialing || p.holder != nil {
		return false
	}
	p.wanted, p.seek = false, false
	p.holdLocked(c, false)
	p.untried = true
	return true
}

// free reports whether the pass is free: no dial and no connection holds
// it.
func (p *pass) free() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.dialing && p.holder == nil
}

// hold gives the pass, when free, to c, a connection that lost its slot
// and found none free; it reports whether c holds it.
func (p *pass) hold(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder != c && (p.dialing || p.holder != nil) {
		return false
	}
	p.holdLocked(c, true)
	return true
}

// release gives the pass back when c holds it (c closes).
func (p *pass) release(c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder == c {
		p.wanted, p.seek = false, false
		p.holdLocked(nil, false)
	}
}

// held reports whether c holds the pass.
func (p *pass) held(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.holder == c
}

// seekDue reports whether c holds the pass and should try for a slot at
// this checkout: a dial wants the pass, or callers wait (waiting), or c
// has not tried since its dial, and c has not found the slots full within
// seekEvery. The probe it asks for makes the try (seeking). Otherwise c
// keeps the pass: an instance that serves one request at a time needs no
// slot.
//
// The first checkout of an untried connection tries because it may be
// the first of a burst (a fresh instance, a quiet one): the callers
// arriving just after it would otherwise wait for its query to come back
// before their dials could have the pass.
func (p *pass) seekDue(c *Conn, waiting bool) bool {
	if p.holderNow.Load() != c {
		return false // the lock is for the holder only: most checkouts are of connections holding a slot
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder != c || !p.wanted && !waiting && !p.untried || p.recentlyFullLocked() {
		return false
	}
	p.wanted, p.seek, p.untried = false, true, false
	return true
}

// seeking reports whether c's probe is to try for a slot: when c holds
// the pass and a dial wants it (seekDue), or c has not found the slots
// full within seekEvery. The probe's round trip is paid either way, and
// a connection probed after idling is about to serve, maybe the first of
// a burst, which then dials without waiting for it to come back.
func (p *pass) seeking(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder != c {
		return false
	}
	seek := p.seek || !p.recentlyFullLocked()
	p.seek = false
	if seek {
		p.tried, p.trying = time.Now(), true // sought records the outcome
	}
	return seek
}

// sought records c's try for a slot: got one (try.ok), c gives the
// pass back.
func (p *pass) sought(c *Conn, try tried) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder != c {
		return
	}
	if try.ok {
		p.wanted = false
		p.holdLocked(nil, false)
		return
	}
	p.lookedLocked(try)
	p.holdLocked(c, true)
}

// watchShare sets below (Connector.WatchShare).
func (p *pass) watchShare(below func() bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.below = below
}

// belowShare reports whether a try for a slot that finds none is to
// leave the want mark: the instance holds fewer connections than its
// fair share and callers want more.
func (p *pass) belowShare() bool {
	p.mu.Lock()
	below := p.below
	p.mu.Unlock()
	return below != nil && below()
}

// othersWaiting reports whether the last try that found no slot free
// and looked saw another instance's want mark.
func (p *pass) othersWaiting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.othersWait
}

// heldForSeek reports whether a connection holds the pass that will try
// for a slot at its next checkout (it has not found the slots full
// within seekEvery), and notes that a dial wants the pass.
func (p *pass) heldForSeek() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder == nil {
		return false
	}
	p.wanted = true
	return !p.recentlyFullLocked()
}

// takesSlot reports whether the dial holding the pass is to take a slot
// in its session's setup: unless it will be the instance's only
// connection (others is false) and no other dial waits for the pass.
func (p *pass) takesSlot(others bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return others || p.wanted
}

// settle settles the finding of c's dial (Connector.DialSettled): it
// reports whether c holds the pass and its last try for a slot found
// none free, and from then on that finding refuses dials.
func (p *pass) settle(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder != c {
		return false
	}
	if p.unsettled {
		p.unsettled = false
		p.changedLocked()
	}
	return p.full
}

// holderCount is 1 when a connection holds the pass, else 0.
func (p *pass) holderCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holder != nil {
		return 1
	}
	return 0
}
