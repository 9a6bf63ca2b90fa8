package runpool_test

import (
	"log/slog"
	"strings"
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

// A failover behind one address: the pool gives up its connection to
// server A as dead and reaches server B, where another instance of the
// service holds an idle session of the same role with the same PID, begun
// moments after the pool's dial. The pool never ends that session; once
// it reaches A again, it ends its own orphan there. Before, the pool
// matched PID, user, idle and a start within 10 s of its dial through
// whichever connection was at hand, and ended the other instance's
// session on B.
func TestOrphanEndingStaysOnItsServer(t *testing.T) {
	a, b, role, samePIDs := pgtest.Twins(t)
	proxy, err := faultproxy.Start(faultproxy.Config{Target: a.Addr(), Mode: faultproxy.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	ctx := ctxT(t, 30*time.Second)
	p := openPoolAt(t, strings.Replace(a.URLFor(role, "pw", role), a.Addr(), proxy.Addr(), 1), runpool.Config{
		MaxConns: 2, ProbeAfterIdle: 50 * time.Millisecond, MaintainInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	var pid uint32
	if err := p.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}

	// The failover: new flows reach B, where the other instance's
	// session has the pool's PID; the flow to A goes silent.
	proxy.SetTarget(b.Addr())
	stranger := pgtest.ConnectWithPID(t, ctx, b.URLFor(role, "pw", role), pid, samePIDs)
	proxy.Forget()
	time.Sleep(100 * time.Millisecond) // past ProbeAfterIdle: the next checkout probes
	var onB uint32
	if err := p.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&onB); err != nil {
		t.Fatal(err)
	}
	t.Logf("the pool's orphan: PID %d on A; the other instance's session: PID %d on B; the pool's new one: PID %d on B",
		pid, stranger.PgConn().PID(), onB)
	time.Sleep(time.Second) // 20 maintainer ticks, each with a live connection on B at hand
	if err := stranger.Ping(ctx); err != nil {
		t.Fatalf("the other instance's session on B was ended (PIDs equal: %v): %v", samePIDs, err)
	}
	if n := p.Stat().OrphansEndedCount(); n != 0 {
		t.Fatalf("%d sessions ended on B, want 0", n)
	}

	// Back to A: the orphan there is the pool's own, and is ended.
	proxy.SetTarget(a.Addr())
	proxy.Forget()
	time.Sleep(100 * time.Millisecond)
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the pool ended a session on A", func() bool { return p.Stat().OrphansEndedCount() > 0 })
	waitFor(t, 5*time.Second, "the pool's orphan on A gone", func() bool {
		return a.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", int32(pid)) == 0
	})
	if err := stranger.Ping(ctx); err != nil {
		t.Fatalf("the other instance's session on B was ended: %v", err)
	}
}
