package runpool

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/puddle/v2"
)

// Open creates a pool and checks it against the server before returning:
// it opens one connection (so an unreachable server or a wrong password
// fails here, at start, not on the first request), reads the server's
// limits when the connector can (LimitReader), derives MaxConns from the
// budget and runs the start-up check (budget.go). The connection it opened
// becomes the pool's first.
func Open[C any](ctx context.Context, cfg Config, connector Connector[C], hooks Hooks[C]) (*Pool[C], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	platform := DetectPlatform(lookupWith(cfg.Platform))
	// The first dial needs the dial settings only; the pool's size waits
	// for the server's limits.
	dialing := settings{Config: cfg.withDefaults()}
	m := newMetrics(dialing.Config)
	boot := &Pool[C]{connector: connector, cfg: dialing, hooks: hooks, dialSem: make(chan struct{}, 1), m: m}
	first, err := boot.dialBackoff(ctx)
	if err != nil {
		return nil, fmt.Errorf("runpool: cannot reach the server: %w", err)
	}
	var server *ServerLimits
	// Behind a pooler the server's limits describe the pooler's server
	// side, not this service's share (pooler.go): they are not read.
	if lr, ok := connector.(LimitReader[C]); ok && dialing.BudgetCheck != BudgetCheckOff && !dialing.BehindPooler() {
		if sl, err := lr.ServerLimits(ctx, first); err == nil {
			server = &sl
		} else {
			dialing.Logger.Warn("runpool: cannot read the server's connection limits", "pool", dialing.Name, "err", err)
		}
	}
	s, events, err := resolve(cfg, platform, server)
	logEvents(dialing.Logger, events)
	if err != nil {
		connector.Close(first, false)
		return nil, err
	}
	p, err := newPool(s, connector, hooks, m, false) // the maintainer's first tick fills the floors, the first connection counted
	if err != nil {
		connector.Close(first, false)
		return nil, err
	}
	// The first connection goes into the pool idle now, not at the first
	// checkout: from here its idle time counts, so a first request that
	// comes after a long quiet start (a warm instance, a NAT that forgot
	// the flow meanwhile) finds it peeked at or probed, or closed by the
	// maintainer, like any other idle connection.
	p.spare.Store(&first)
	if err := p.p.CreateResource(ctx); err != nil {
		if spare := p.spare.Swap(nil); spare != nil {
			connector.Close(*spare, false)
		}
	}
	p.policy.dialTook(boot.policy.dialNanosOrZero())
	return p, nil
}

// Start creates a pool as pgxpool.NewWithConfig does, without I/O, when
// the server's limits are needed neither to size the pool nor for the
// start-up check: MaxConns is set or MaxInstances is not (then the
// server's limits would only cap pgxpool's default size), no Budget is
// set for the check to compare with the server's, or the limits are not
// to be read at all (BudgetCheck off, a pooler in front). The pool then
// opens the MinConns and MinIdleConns floors in the background at once,
// and its first connection when a caller first needs one, so an
// unreachable server fails that caller, not Start. Otherwise Start is
// Open: it dials once within ctx and reads the server's limits.
func Start[C any](ctx context.Context, cfg Config, connector Connector[C], hooks Hooks[C]) (*Pool[C], error) {
	if cfg.needsServerToStart() {
		return Open(ctx, cfg, connector, hooks)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, events, err := resolve(cfg, DetectPlatform(lookupWith(cfg.Platform)), nil)
	logEvents(cfg.Logger, events)
	if err != nil {
		return nil, err
	}
	return newPool(s, connector, hooks, nil, true)
}

// needsServerToStart reports whether sizing the pool or its start-up
// check needs the server's limits (see Start).
func (c Config) needsServerToStart() bool {
	switch {
	case c.BudgetCheck == BudgetCheckOff || c.BehindPooler():
		return false
	case c.BudgetCheck == BudgetCheckError, c.Budget > 0:
		return true
	}
	return c.MaxConns == 0 && c.MaxInstances > 0
}

// lookupWith is os.LookupEnv, with RUNPOOL_PLATFORM answered by an
// explicit Config.Platform when set.
func lookupWith(platform string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if k == "RUNPOOL_PLATFORM" && platform != "" {
			return platform, true
		}
		return os.LookupEnv(k)
	}
}

// New creates a pool that opens connections through connector. Unlike
// Open it does no I/O: it opens no connection before returning (the
// MinConns and MinIdleConns floors open in the background at once), and
// reads no server limits. It sizes the pool as Start does without I/O:
// MaxConns when set, else Budget divided among MaxInstances, capped at
// the platform's concurrency; a Budget is not compared with what the
// server allows (Open and Start do that).
func New[C any](cfg Config, connector Connector[C], hooks Hooks[C]) (*Pool[C], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, events, err := resolve(cfg, DetectPlatform(lookupWith(cfg.Platform)), nil)
	logEvents(cfg.Logger, events)
	if err != nil {
		return nil, err
	}
	return newPool(s, connector, hooks, nil, true)
}

// newPool creates the pool with its resolved settings and, from Open,
// the instruments its first dial was recorded with.
func newPool[C any](cfg settings, connector Connector[C], hooks Hooks[C], m *metrics, fillNow bool) (*Pool[C], error) {
	if m == nil {
		m = newMetrics(cfg.Config)
	}
	ender, _ := connector.(OrphanEnder[C])
	if cfg.BehindPooler() {
		ender = nil // the pooler's sessions are not ours to end (pooler.go)
	}
	p := &Pool[C]{
		ender:     ender,
		connector: connector,
		cfg:       cfg,
		hooks:     hooks,
		rules: idleRules{probeAfter: cfg.ProbeAfterIdle, maxIdle: cfg.MaxConnIdleTime,
			probeTimeout: cfg.ProbeTimeout, pingTimeout: cfg.PingTimeout, tick: cfg.MaintainInterval},
		dialSem:        make(chan struct{}, cfg.MaxConcurrentDials),
		entries:        make(map[*entry[C]]struct{}),
		released:       make(chan struct{}, 1),
		stopMaintainer: make(chan struct{}),
		yieldNow:       make(chan struct{}, 1),
		maintainerDone: make(chan struct{}),
		shutdownDone:   make(chan struct{}),
		m:              m,
	}
	p.bg, p.stopBg = context.WithCancel(context.Background())
	pp, err := puddle.NewPool(&puddle.Config[*entry[C]]{
		Constructor: p.construct,
		Destructor:  p.destruct,
		MaxSize:     cfg.MaxConns,
	})
	if err != nil {
		return nil, err
	}
	p.p = pp
	p.gone, _ = connector.(GoneChecker[C])
	p.witness, _ = connector.(InterruptWitness[C])
	if cfg.SlotsOn() {
		if p.slotter, _ = connector.(SlotHolder[C]); p.slotter != nil {
			p.slotter.WatchShare(p.belowShare)
			p.quiet = time.AfterFunc(time.Hour, p.askWorker)
			p.quiet.Stop()
		}
	}
	p.said, _ = connector.(ServerWitness[C])
	if pk, ok := connector.(parker); ok {
		p.parking = pk.Parks()
	}
	p.path.init(nanotime())
	p.registerGauges()
	go p.maintain(fillNow)
	return p, nil
}
