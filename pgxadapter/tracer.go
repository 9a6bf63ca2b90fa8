package pgxadapter

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// Tracing, as in pgxpool: a ConnConfig.Tracer that also implements
// AcquireTracer or ReleaseTracer traces the pool's checkouts and
// releases. The names and data match pgxpool's, with *Pool for
// *pgxpool.Pool, so a tracer written for pgxpool works once its import
// is changed. Without a tracer these cost a nil check.

// AcquireTracer traces Acquire, and the checkout every query method of
// Pool makes.
type AcquireTracer interface {
	// TraceAcquireStart is called at the beginning of Acquire.
	// The returned context is used for the rest of the call and will be passed to the TraceAcquireEnd.
	TraceAcquireStart(ctx context.Context, pool *Pool, data TraceAcquireStartData) context.Context
	// TraceAcquireEnd is called when a connection has been acquired.
	TraceAcquireEnd(ctx context.Context, pool *Pool, data TraceAcquireEndData)
}

// TraceAcquireStartData is passed to TraceAcquireStart.
type TraceAcquireStartData struct{}

// TraceAcquireEndData is passed to TraceAcquireEnd: the connection
// acquired, or the error.
type TraceAcquireEndData struct {
	Conn *pgx.Conn
	Err  error
}

// ReleaseTracer traces Release, and the release of the connection a query
// method of Pool used.
type ReleaseTracer interface {
	// TraceRelease is called at the beginning of Release.
	TraceRelease(pool *Pool, data TraceReleaseData)
}

// TraceReleaseData is passed to TraceRelease.
type TraceReleaseData struct {
	Conn *pgx.Conn
}

// acquire is every checkout of the pool's methods: the root pool's,
// traced when an AcquireTracer is set.
func (p *Pool) acquire(ctx context.Context) (*runpool.Conn[*pconn], error) {
	if p.acquireTracer == nil {
		return p.p.Acquire(ctx)
	}
	return p.acquireTraced(ctx)
}

func (p *Pool) acquireTraced(ctx context.Context) (*runpool.Conn[*pconn], error) {
	ctx = p.acquireTracer.TraceAcquireStart(ctx, p, TraceAcquireStartData{})
	c, err := p.p.Acquire(ctx)
	var conn *pgx.Conn
	if err == nil {
		conn = c.Value().Pgx
	}
	p.acquireTracer.TraceAcquireEnd(ctx, p, TraceAcquireEndData{Conn: conn, Err: err})
	return c, err
}
