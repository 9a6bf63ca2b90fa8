package runpool

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/puddle/v2"
)

// Hooks run at named moments of a connection's life. Each is optional.
// Park and Unpark (park.go) run none of the checkout and release hooks: a
// parked connection stays with its holder.
type Hooks[C any] struct {
	// AfterConnect runs on every new connection before first use; an
	// error discards the connection and fails the dial.
	AfterConnect func(ctx context.Context, c C) error
	// ShouldPing runs on an Acquire of a connection the pool would hand
	// out without a probe (idle is how long it was idle); true has it
	// probed first. It cannot waive a probe the pool's own checks call
	// for.
	ShouldPing func(ctx context.Context, c C, idle time.Duration) bool
	// PrepareConn runs on checkout (Acquire, AcquireAllIdle) after the
	// pool's checks, last before the caller gets the connection. ok false
	// closes it; with a nil error Acquire then takes another, and fails
	// after MaxConns rejections in a row. An error fails the checkout,
	// with the connection back in the pool when ok is true.
	PrepareConn func(ctx context.Context, c C) (ok bool, err error)
	// OnRelease runs as Release begins, for every connection released.
	OnRelease func(c C)
	// AfterRelease runs, in its own goroutine, on a connection Release
	// would keep, before it goes back to the idle list: false closes it
	// instead.
	AfterRelease func(c C) bool
}

// pingWanted reports whether the ShouldPing hook asks for a probe of a
// connection the pool would otherwise hand out without one.
func (p *Pool[C]) pingWanted(ctx context.Context, e *entry[C], idle time.Duration) bool {
	return p.hooks.ShouldPing != nil && p.hooks.ShouldPing(ctx, e.conn, idle)
}

// handOut lends a connection that passed the pool's checks to its caller
// once the PrepareConn hook accepts it. It returns no Conn and no error
// when the hook rejected the connection without an error: the connection
// is closed and the caller takes another. rejected counts the caller's
// rejections; past MaxConns of them (the hook likely rejects every
// connection, and each would cost a dial) the checkout fails.
func (p *Pool[C]) handOut(ctx context.Context, res *puddle.Resource[*entry[C]], e *entry[C], now int64, rejected *int) (*Conn[C], error) {
	if p.hooks.PrepareConn == nil {
		return p.checkOut(res, e, now), nil
	}
	ok, err := p.hooks.PrepareConn(ctx, e.conn)
	switch {
	case ok && err == nil:
		return p.checkOut(res, e, now), nil
	case ok:
		p.returnIdle(res) // unused: its idle time runs on
		return nil, fmt.Errorf("runpool: PrepareConn: %w", err)
	}
	p.destroy(res)
	if err != nil {
		return nil, fmt.Errorf("runpool: PrepareConn: %w", err)
	}
	if *rejected++; *rejected > int(p.cfg.MaxConns) {
		return nil, fmt.Errorf("runpool: PrepareConn rejected %d connections in a row (MaxConns is %d)", *rejected, p.cfg.MaxConns)
	}
	return nil, nil
}

// afterRelease runs the AfterRelease hook on a connection Release checked
// in, then puts it on the idle list or, when the hook says so or left it
// unusable, closes it.
func (p *Pool[C]) afterRelease(res *puddle.Resource[*entry[C]], e *entry[C]) {
	if p.hooks.AfterRelease(e.conn) && p.connector.Reusable(e.conn) {
		p.putIdle(res)
		return
	}
	p.destroy(res)
}
