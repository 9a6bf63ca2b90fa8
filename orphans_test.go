package runpool_test

import (
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/faultproxy"
	"github.com/runpool/runpool/internal/pgtest"
)

// Connections given up behind a NAT that forgot their flows leave their
// server sessions waiting for a client that will never write: the pool
// ends them through a live connection at the maintainer's next tick,
// instead of leaving their slots to the server's keepalives (about a
// minute; this proxy's kernel answers them, so here never). (This proxy
// closes its side toward the server when the pool closes a forgotten
// flow's socket, as a NAT would not, so only the session whose probe went
// unanswered stays orphaned here.) Before, it stayed.
func TestOrphanedSessionsAreEnded(t *testing.T) {
	const natIdle = 300 * time.Millisecond
	p, user := openViaAs(t, faultproxy.Config{Mode: faultproxy.Blackhole, IdleTimeout: natIdle},
		runpool.Config{MaxConns: 4, ProbeAfterIdle: 100 * time.Millisecond, MaintainInterval: 100 * time.Millisecond})
	srv := pgtest.Shared(t)
	ctx := ctxT(t, 20*time.Second)

	for _, c := range acquireAll(t, ctx, p.Acquire, 3) {
		c.Release()
	}
	time.Sleep(2 * natIdle) // the NAT forgets the three flows
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "no session left but the pool's live connections", func() bool {
		return srv.Backends(t, user) == int(p.Stat().TotalConns())
	})
	// The pool counts the sessions it ended when the server's answer
	// arrives, which may be after the backends are gone.
	waitFor(t, time.Second, "OrphansEndedCount above 0 (still 0: the sessions ended by themselves)", func() bool {
		return p.Stat().OrphansEndedCount() > 0
	})
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("the live connection after the orphans were ended: %v", err)
	}
}
