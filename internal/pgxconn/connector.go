package pgxconn

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/cloudsqldial"
)

// Connector opens and closes the connections of one pool for either
// adapter: runpool.Connector with the optional GoneChecker, LimitReader,
// OrphanEnder and InterruptWitness. C is the adapter's connection type.
type Connector[C Pooled] struct {
	session  *Session
	open     func(context.Context, *pgx.ConnConfig) (C, error)
	before   func(context.Context, *pgx.ConnConfig) error
	onClose  func(*pgx.Conn)
	server   string               // names the server in errors
	cloudSQL *cloudsqldial.Handle // the share of the Cloud SQL Dialer; nil without Cloud SQL
	live     atomic.Int64         // connections open
	// sawWriter: a connection was opened to a server that accepted
	// writes, so a server refusing writes later changed role (role.go).
	sawWriter atomic.Bool
	retired   atomic.Bool // release cloudSQL when the last connection closes
	pass      *pass       // the instance's pass, with budget slots on (pass.go)
}

// Options is what an adapter gives New.
type Options[C Pooled] struct {
	// ConnConfig and Pool are the user's settings; New copies ConnConfig.
	ConnConfig *pgx.ConnConfig
	Pool       runpool.Config
	// CloudSQL, when set, dials that instance through the process's
	// Cloud SQL Dialer (cloudsqldial.Wire).
	CloudSQL *cloudsqldial.Settings
	// Open dials one connection with cc and returns it in the adapter's
	// type, its embedded Conn's Pgx set.
	Open func(ctx context.Context, cc *pgx.ConnConfig) (C, error)
	// BeforeConnect, when set, may change the copy of the settings each
	// dial uses, before the dial; its error fails the dial as it is. It
	// runs once for each connection opened: with budget slots on, after
	// the dial took the pass.
	BeforeConnect func(ctx context.Context, cc *pgx.ConnConfig) error
	// BeforeClose, when set, runs before each connection is closed.
	BeforeClose func(*pgx.Conn)
}

// New returns the Connector for o: runpool's dialer and session settings
// (Setup), the Cloud SQL wiring, checked within ctx when ctx is not nil,
// and a warning in the log when the settings do not protect the password
// and the data (warnTransport). It dials nothing.
func New[C Pooled](ctx context.Context, o Options[C]) (*Connector[C], error) {
	session := Setup(o.ConnConfig, o.Pool)
	cc := session.ConnConfig()
	h, err := cloudsqldial.Wire(ctx, cc, o.CloudSQL, Dialer(o.Pool))
	if err != nil {
		return nil, err
	}
	warnTransport(&cc.Config, o.Pool, o.CloudSQL != nil)
	k := &Connector[C]{session: session, open: o.Open, before: o.BeforeConnect, onClose: o.BeforeClose,
		server: ServerName(o.ConnConfig, o.CloudSQL), cloudSQL: h}
	if session.slots.n > 0 {
		k.pass = newPass(session.slots)
	}
	return k, nil
}

// ServerName names the server in errors: the Cloud SQL instance when s
// is set, else cc's host and port.
func ServerName(cc *pgx.ConnConfig, s *cloudsqldial.Settings) string {
	if s != nil {
		return "Cloud SQL instance " + s.Instance
	}
	return fmt.Sprintf("server %s:%d", cc.Host, cc.Port)
}

// ServerName names the server in errors (the function ServerName).
func (k *Connector[C]) ServerName() string { return k.server }

// Connect dials a connection with the settings of the moment, watched
// for interruptions (watch), and sends the session settings the startup
// packet did not carry (Session.AfterConnect). With budget slots on it
// dials only while it holds the instance's pass (pass.go): a
// *runpool.NoSlotError when a connection without a slot holds it and
// found none free.
func (k *Connector[C]) Connect(ctx context.Context) (C, error) {
	var zero C
	cc := k.session.ConnConfig().Copy()
	if k.pass == nil {
		if err := k.beforeConnect(ctx, cc); err != nil {
			return zero, err
		}
		c, _, err := k.connect(ctx, cc, func() (slots, bool, bool) { return k.session.slots, false, false })
		return c, err
	}
	began := time.Now()
	ok, err := k.pass.take(ctx)
	if err != nil {
		return zero, err
	}
	waited := time.Since(began)
	if !ok {
		return zero, &runpool.NoSlotError{Slots: k.pass.slots.n, Waiting: k.pass.othersWaiting()}
	}
	// The hook runs once the dial is sure to happen: a caller that waited
	// for the pass in vain opened nothing, so it ran no hook.
	if err := k.beforeConnect(ctx, cc); err != nil {
		k.pass.dialEnded(nil, false, tried{})
		return zero, err
	}
	// The instance's only connection keeps the pass and takes no slot,
	// unless another dial waits: an idle instance then holds none of the
	// slots the busy ones share.
	var took bool
	c, try, err := k.connect(ctx, cc, func() (slots, bool, bool) {
		if took = k.pass.takesSlot(k.live.Load() > 0); took {
			return k.pass.slots, k.pass.belowShare(), k.pass.lookDue()
		}
		return slots{}, false, false
	})
	var holder *Conn
	if err == nil {
		pc := c.pooled()
		pc.pass, pc.passWait = k.pass, waited
		if _, slotted := slotOf(pc.Pgx); !slotted {
			holder = pc
		}
	}
	k.pass.dialEnded(holder, took, try)
	return c, err
}

// beforeConnect runs the BeforeConnect hook, when set, on cc.
func (k *Connector[C]) beforeConnect(ctx context.Context, cc *pgx.ConnConfig) error {
	if k.before == nil {
		return nil
	}
	return k.before(ctx, cc)
}

// connect is Connect's dial, after the BeforeConnect hook; the session's
// setup tries for a slot of what slotsNow returns once the server
// accepted the connection (none when its n is 0), with the want mark
// and the look whether another instance waits as it also says
// (Session.afterConnect), and connect returns what the try found.
func (k *Connector[C]) connect(ctx context.Context, cc *pgx.ConnConfig, slotsNow func() (slots, bool, bool)) (C, tried, error) {
	var zero C
	watch(&cc.Config)
	said := new(atomic.Uint32)
	hearErrors(&cc.Config, said)
	c, err := k.open(ctx, cc)
	if err != nil {
		k.session.DialFailed(err)
		return zero, tried{}, classifyDialError(err)
	}
	pc := c.pooled()
	pc.said, pc.writer, pc.sawWriter = said, roleOf(pc.Pgx.PgConn()), &k.sawWriter
	if pc.writer == roleWriter && !k.sawWriter.Load() {
		k.sawWriter.Store(true)
	}
	s, want, look := slotsNow()
	try, err := k.session.afterConnect(ctx, pc.Pgx, s, want, look)
	if err != nil {
		pc.Pgx.Close(ctx)
		return zero, tried{}, err
	}
	pc.sock.Init(pc.Pgx.PgConn().Conn())
	k.live.Add(1)
	return c, try, nil
}

// Gone reports, without sending anything, that the server closed the
// connection or ended its session (runpool.GoneChecker).
func (k *Connector[C]) Gone(c C) bool { return c.pooled().gone() }

// Ping is the checkout probe: a look at the socket, then a round trip
// bounded by ctx.
func (k *Connector[C]) Ping(ctx context.Context, c C) error { return c.pooled().ping(ctx) }

// Reusable reports whether c may go back to the idle list: open, not
// busy and outside any transaction.
func (k *Connector[C]) Reusable(c C) bool { return c.pooled().reusable() }

// Cancel asks the server to cancel what c runs.
func (k *Connector[C]) Cancel(ctx context.Context, c C) error {
	return c.pooled().Pgx.PgConn().CancelRequest(ctx)
}

// Close closes c (see runpool.Connector), after the BeforeClose hook.
func (k *Connector[C]) Close(c C, dead bool) {
	pc := c.pooled()
	if k.onClose != nil {
		k.onClose(pc.Pgx)
	}
	pc.close(dead)
	if k.pass != nil {
		k.pass.release(pc) // after the close: the next dial's backend must not meet this one's
	}
	if k.live.Add(-1) == 0 && k.retired.Load() {
		k.cloudSQL.Release()
	}
}

// PassHeld reports that a connection holding the pass will try for a
// slot at its next checkout (runpool.SlotHolder; pass.go).
func (k *Connector[C]) PassHeld() bool { return k.pass != nil && k.pass.heldForSeek() }

// WantsProbe reports that c holds the pass and should try for a slot at
// this checkout (runpool.SlotHolder; pass.go); waiting: callers wait.
func (k *Connector[C]) WantsProbe(c C, waiting bool) bool {
	return k.pass != nil && k.pass.seekDue(c.pooled(), waiting)
}

// WatchShare has the want mark follow below (runpool.SlotHolder;
// mark.go).
func (k *Connector[C]) WatchShare(below func() bool) {
	if k.pass != nil {
		k.pass.watchShare(below)
	}
}

// OthersWait reports that the last try for a slot that found none saw
// another instance waiting below its fair share (runpool.SlotHolder).
func (k *Connector[C]) OthersWait() bool { return k.pass != nil && k.pass.othersWaiting() }

// PassFree reports that neither a dial nor a connection holds the pass
// (runpool.SlotHolder).
func (k *Connector[C]) PassFree() bool { return k.pass != nil && k.pass.free() }

// DialSettled settles the finding of c's dial and reports whether c
// holds the pass because its try for a slot found none free, and how
// long the dial waited for the pass (runpool.SlotHolder).
func (k *Connector[C]) DialSettled(c C) (bool, time.Duration) {
	if k.pass == nil {
		return false, 0
	}
	pc := c.pooled()
	return k.pass.settle(pc), pc.passWait
}

// YieldSlot has c, idle, give its slot back and hold the free pass
// instead (runpool.SlotHolder).
func (k *Connector[C]) YieldSlot(ctx context.Context, c C) (bool, error) {
	return c.pooled().yieldSlot(ctx)
}

// SlotsHeld is the number of open connections holding a slot
// (runpool.SlotHolder): all but the one holding the pass.
func (k *Connector[C]) SlotsHeld() int {
	if k.pass == nil {
		return 0
	}
	return int(k.live.Load()) - k.pass.holderCount()
}

// Demoted reports that c's server refused a write because it turned
// read-only under c (runpool.ServerWitness; role.go).
func (k *Connector[C]) Demoted(c C) bool { return c.pooled().demoted() }

// EndedIdle reports that the server ended c's session for idling
// (runpool.ServerWitness).
func (k *Connector[C]) EndedIdle(c C) bool { return c.pooled().endedIdle() }

// ServerLimits reads what the server allows the connection's role
// (runpool.LimitReader).
func (k *Connector[C]) ServerLimits(ctx context.Context, c C) (runpool.ServerLimits, error) {
	return readLimits(ctx, c.pooled().Pgx)
}

// Session and EndOrphans let the pool end sessions it gave up as dead
// (runpool.OrphanEnder).
func (k *Connector[C]) Session(c C) (runpool.Orphan, bool) { return sessionOf(c.pooled().Pgx) }

// EndOrphans ends orphans through via (see endOrphans).
func (k *Connector[C]) EndOrphans(ctx context.Context, via C, orphans []runpool.Orphan) (int, error) {
	n, err := endOrphans(ctx, via.pooled().Pgx, orphans)
	if n > 0 && k.pass != nil {
		k.pass.orphansEnded()
	}
	return n, err
}

// Interruption tells the pool whether c was closed by its caller's
// context, and whether the server answered after
// (runpool.InterruptWitness).
func (k *Connector[C]) Interruption(c C) runpool.Interruption { return c.pooled().interruption() }

// Release gives back the share of the Cloud SQL Dialer now, closing the
// Dialer when no other pool holds it; call it once the pool has drained
// (closing the Dialer cuts the connections it opened).
func (k *Connector[C]) Release() { k.cloudSQL.Release() }

// Retire gives back the share of the Cloud SQL Dialer once no connection
// is open any more: at once, or when the last one closes.
func (k *Connector[C]) Retire() {
	if k.cloudSQL == nil {
		return
	}
	k.retired.Store(true)
	if k.live.Load() == 0 {
		k.cloudSQL.Release()
	}
}

var (
	_ runpool.GoneChecker[*Conn]      = (*Connector[*Conn])(nil)
	_ runpool.LimitReader[*Conn]      = (*Connector[*Conn])(nil)
	_ runpool.OrphanEnder[*Conn]      = (*Connector[*Conn])(nil)
	_ runpool.InterruptWitness[*Conn] = (*Connector[*Conn])(nil)
	_ runpool.ServerWitness[*Conn]    = (*Connector[*Conn])(nil)
	_ runpool.SlotHolder[*Conn]       = (*Connector[*Conn])(nil)
)
