package pgxadapter

import (
	"context"
	"time"

	"github.com/runpool/runpool"
)

// hooks returns the root pool's hooks for p's Config, and notes p's
// tracers (tracer.go). Each hook runs at pgxpool's moment:
// BeforeConnect and BeforeClose in the connector (connector.go),
// AfterConnect after the dial, ShouldPing and PrepareConn (or the
// deprecated BeforeAcquire) on checkout, the ReleaseTracer and
// AfterRelease on Release. A hook left unset costs its nil check.
func (p *Pool) hooks() runpool.Hooks[*pconn] {
	cfg := p.cfg
	var h runpool.Hooks[*pconn]
	if ac := cfg.AfterConnect; ac != nil {
		h.AfterConnect = func(ctx context.Context, pc *pconn) error { return ac(ctx, pc.Pgx) }
	}
	if sp := cfg.ShouldPing; sp != nil {
		h.ShouldPing = func(ctx context.Context, pc *pconn, idle time.Duration) bool {
			return sp(ctx, ShouldPingParams{Conn: pc.Pgx, IdleDuration: idle})
		}
	}
	if pr := cfg.PrepareConn; pr != nil {
		h.PrepareConn = func(ctx context.Context, pc *pconn) (bool, error) { return pr(ctx, pc.Pgx) }
	} else if ba := cfg.BeforeAcquire; ba != nil {
		h.PrepareConn = func(ctx context.Context, pc *pconn) (bool, error) { return ba(ctx, pc.Pgx), nil }
	}
	if ar := cfg.AfterRelease; ar != nil {
		h.AfterRelease = func(pc *pconn) bool { return ar(pc.Pgx) }
	}
	p.acquireTracer, _ = cfg.ConnConfig.Tracer.(AcquireTracer)
	if rt, ok := cfg.ConnConfig.Tracer.(ReleaseTracer); ok {
		h.OnRelease = func(pc *pconn) { rt.TraceRelease(p, TraceReleaseData{Conn: pc.Pgx}) }
	}
	return h
}
