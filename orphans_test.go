package runpool_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

// natIdleForOrphans is the idle timeout of orphanBehindNAT's NAT.
const natIdleForOrphans = 300 * time.Millisecond

// probeAfterForOrphans is orphanBehindNAT's ProbeAfterIdle: short of the
// 2*natIdleForOrphans its connections idle, and several maintainer ticks
// long, since the maintainer ends orphans only through a connection it
// trusts without a probe, and a tick late by the slack between the two
// (at 100 ms each, none) would find none.
const probeAfterForOrphans = 500 * time.Millisecond

// orphanBehindNAT opens a pool of three connections behind a NAT that
// forgets flows idle natIdleForOrphans (packets vanish), lets it forget
// them, and runs a query: its probe goes unanswered, which leaves that
// session on the server, noted as an orphan, and the query runs on a
// fresh connection. The pool probes connections idle for
// probeAfterForOrphans, which the forgotten ones are by then.
func orphanBehindNAT(t *testing.T, maintain time.Duration) (*pgxadapter.Pool, *pgtest.Server, string, context.Context) {
	t.Helper()
	proxy := startProxy(t, faultproxy.Config{Mode: faultproxy.Blackhole, IdleTimeout: natIdleForOrphans})
	p, _, user := openPool(t, runpool.Config{MaxConns: 4, ProbeAfterIdle: probeAfterForOrphans, MaintainInterval: maintain},
		through(proxy))
	ctx := ctxT(t, 20*time.Second)
	for _, c := range acquireAll(t, ctx, p.Acquire, 3) {
		c.Release()
	}
	time.Sleep(2 * natIdleForOrphans) // the NAT forgets the three flows
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	return p, pgtest.Shared(t), user, ctx
}

// Connections given up behind a NAT that forgot their flows leave their
// server sessions waiting for a client that will never write: the pool
// ends them through a live connection at the maintainer's next tick,
// instead of leaving their slots to the server's keepalives (about a
// minute; this proxy's kernel answers them, so here never). (This proxy
// closes its side toward the server when the pool closes a forgotten
// flow's socket, as a NAT would not, so only the session whose probe went
// unanswered stays orphaned here.) Before, it stayed.
func TestOrphanedSessionsAreEnded(t *testing.T) {
	p, srv, user, ctx := orphanBehindNAT(t, 100*time.Millisecond)
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

// The next connection the pool dials ends the orphans noted before it,
// before it serves, rather than leave them to a maintainer tick (an
// hour away here): a burst after a thaw dials, and its dials need the
// server slots the orphans hold.
func TestOrphansEndedByTheNextDial(t *testing.T) {
	p, srv, user, ctx := orphanBehindNAT(t, time.Hour)
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// A dial may have begun before the last orphan was noted: one more
	// dial ends it.
	if srv.Backends(t, user) > int(p.Stat().TotalConns()) {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := p.Acquire(ctx) // the pool holds one idle: this one dials
		if err != nil {
			t.Fatal(err)
		}
		c.Release()
		c2.Release()
	}
	waitFor(t, time.Second, "no session left but the pool's live connections", func() bool {
		return srv.Backends(t, user) == int(p.Stat().TotalConns())
	})
	if p.Stat().OrphansEndedCount() == 0 {
		t.Fatal("no orphan ended: the sessions ended by themselves")
	}
}

// The maintainer ends orphans through a connection a checkout would
// probe first, when it has none it trusts without one: its query is the
// probe. On a platform that throttles an idle instance, the tick after a
// request rarely comes within ProbeAfterIdle of the last release. Here
// ProbeAfterIdle is a millisecond, so no tick ever finds a trusted
// connection; the one the query ran on is idle less than MaxConnIdleTime,
// in the current epoch, behind a live flow. Before, the orphan stayed
// until the next request that used the pool.
func TestOrphansEndedThroughAConnectionDueAProbe(t *testing.T) {
	const natIdle = 2 * time.Second
	proxy := startProxy(t, faultproxy.Config{Mode: faultproxy.Blackhole, IdleTimeout: natIdle})
	p, _, user := openPool(t, runpool.Config{MaxConns: 4, ProbeAfterIdle: time.Millisecond,
		MaintainInterval: 100 * time.Millisecond, MaxConnIdleTime: time.Minute}, through(proxy))
	srv := pgtest.Shared(t)
	ctx := ctxT(t, 20*time.Second)
	for _, c := range acquireAll(t, ctx, p.Acquire, 2) {
		c.Release()
	}
	time.Sleep(natIdle + natIdle/2) // the NAT forgets both flows
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	// The orphan may be ended before the backends could be counted here:
	// OrphansEndedCount, below, shows there was one.
	// Within the live flow's idle timeout, or the connection it would be
	// ended through is gone too.
	waitFor(t, natIdle/2, "no session left but the pool's live connections", func() bool {
		return srv.Backends(t, user) == int(p.Stat().TotalConns())
	})
	if time.Since(released) >= natIdle {
		t.Fatal("the orphans ended after the NAT's idle timeout: not through the connection the query used")
	}
	waitFor(t, time.Second, "OrphansEndedCount above 0 (still 0: the sessions ended by themselves)", func() bool {
		return p.Stat().OrphansEndedCount() > 0
	})
}

// A connection closed from idle long past MaxConnIdleTime may have
// outlived its flow, and the goodbye its close sends with it: its session
// is noted and ended like a dead connection's. The pool closes idle
// connections within a tick of MaxConnIdleTime, which sits below the
// path's idle timeout; one idle longer was missed by a late tick, or kept
// for MinConns, as here: the NAT forgets its flow, and the checkout that
// finds it past MaxConnIdleTime closes it unprobed. Before, nothing noted
// that session, and it kept its server slot until the server's
// keepalives ended it.
func TestOverdueIdleConnectionsSessionIsEnded(t *testing.T) {
	const natIdle = 600 * time.Millisecond
	proxy := startProxy(t, faultproxy.Config{Mode: faultproxy.Blackhole, IdleTimeout: natIdle})
	p, _, user := openPool(t, runpool.Config{MaxConns: 2, MinConns: 1, MaxConnIdleTime: natIdle / 2,
		MaintainInterval: 50 * time.Millisecond}, through(proxy))
	srv := pgtest.Shared(t)
	ctx := ctxT(t, 20*time.Second)
	waitFor(t, 5*time.Second, "the MinConns floor never filled", func() bool { return p.Stat().IdleConns() == 1 })
	time.Sleep(2 * natIdle) // the NAT forgets the floor's flow
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if s := p.Stat(); s.MaxIdleDestroyCount() == 0 {
		t.Fatal("the checkout did not close the floor's connection as idle past MaxConnIdleTime: the scenario did not happen")
	}
	waitFor(t, 2*time.Second, "no session left but the pool's live connections", func() bool {
		return srv.Backends(t, user) == int(p.Stat().TotalConns())
	})
	waitFor(t, time.Second, "OrphansEndedCount above 0 (still 0: the session ended by itself)", func() bool {
		return p.Stat().OrphansEndedCount() > 0
	})
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
	proxy := startProxy(t, faultproxy.Config{Target: a.Addr(), Mode: faultproxy.Blackhole})
	ctx := ctxT(t, 30*time.Second)
	p, _, _ := openPool(t, runpool.Config{
		MaxConns: 2, ProbeAfterIdle: 50 * time.Millisecond, MaintainInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	}, onServer(a, role), through(proxy))
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

// A freeze while the maintainer ends orphaned sessions does not cost the
// connection it ends them through: the query's deadline counts the time
// the process ran, not the freeze, so at the thaw its answer, waiting in
// the socket, is read. Before, the deadline passed during the freeze, pgx
// closed the connection at the thaw, and the pool lost a healthy idle
// connection (and noted it as one more orphan), so the next checkout
// dialled. Here the proxy's latency keeps the query in flight while the
// test freezes its own process.
func TestOrphanEndingSurvivesAFreeze(t *testing.T) {
	const latency = 200 * time.Millisecond // each way: the query is in flight 400 ms
	proxy := startProxy(t, faultproxy.Config{})
	logs := &logRecorder{}
	p, _, _ := openPool(t, runpool.Config{
		MaxConns: 2, MaintainInterval: 100 * time.Millisecond, Logger: slog.New(logs),
		ProbeAfterIdle: time.Minute, MaxConnIdleTime: time.Minute,
	}, through(proxy))
	ctx := ctxT(t, 30*time.Second)
	cs := acquireAll(t, ctx, p.Acquire, 2)

	// The first connection comes back broken: its session is noted as an
	// orphan; the second, released after it, is trusted, so the next
	// tick ends the orphan through it.
	proxy.SetLatency(latency)
	cs[0].Conn().Close(ctx)
	cs[0].Release()
	cs[1].Release()
	held := func() bool { s := p.Stat(); return s.IdleConns() == 0 && s.AcquiredConns() == 1 }
	waitFor(t, 5*time.Second, "the maintainer never took the idle connection to end the orphan", func() bool {
		if !held() {
			return false
		}
		time.Sleep(50 * time.Millisecond) // not a sweep's glance: the query is under way
		return held()
	})
	// Frozen past the query's bound, with the query still in flight.
	cont := exec.Command("sh", "-c", fmt.Sprintf("sleep %.3f; kill -CONT %d", (2*orphansTimeoutForTest).Seconds(), os.Getpid()))
	if err := cont.Start(); err != nil {
		t.Fatal(err)
	}
	if !held() {
		cont.Wait()
		t.Fatal("the orphan query ended before the freeze: the scenario did not happen")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := cont.Wait(); err != nil {
		t.Fatalf("the process that thaws this one: %v", err)
	}

	waitFor(t, 10*time.Second, "the maintainer never gave the connection back", func() bool {
		s := p.Stat()
		return s.AcquiredConns() == 0 && s.ConstructingConns() == 0
	})
	var order []string
	logs.mu.Lock()
	for _, r := range logs.recs {
		switch {
		case strings.HasPrefix(r.msg, "runpool: freeze detected"), strings.Contains(r.msg, "orphaned sessions"):
			order = append(order, r.msg)
		}
	}
	logs.mu.Unlock()
	// The ticker may log the freeze before or after the worker's query
	// returns; what counts is that the query ended the orphan and kept
	// its connection.
	if s := p.Stat(); s.TotalConns() != 1 || s.NewConnsCount() != 2 || !slices.Contains(order, "runpool: ended orphaned sessions") {
		t.Fatalf("after the freeze: %d connections, %d dialled in all (%q); want the one the orphans were ended through, and no new dial",
			s.TotalConns(), s.NewConnsCount(), order)
	}
	proxy.SetLatency(0)
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// orphansTimeoutForTest is the bound on the maintainer's orphan query
// (orphans.go): the freeze above outlasts it.
const orphansTimeoutForTest = time.Second

// A drain after a NAT forgot every flow finds no connection it trusts to
// end the sessions behind the forgotten flows (its idle connections',
// and the one an unanswered probe left if the next dial has not ended
// it): it dials one for them and closes it after, so no server slot
// outlives the process. Before, the drain left those sessions to the
// server's keepalives (the simulator's reset scenario saw 12 of them
// after a SIGTERM).
func TestDrainEndsOrphansThroughAFreshConnection(t *testing.T) {
	// No maintainer tick comes to end the orphans.
	p, srv, user, ctx := orphanBehindNAT(t, 30*time.Second)
	time.Sleep(2 * natIdleForOrphans) // the NAT forgets the flows of the connections that replaced them too
	if n := srv.Backends(t, user); n == 0 {
		t.Fatal("no backend of the pool's role: the scenario did not happen")
	}
	before := p.Stat().OrphansEndedCount() // by a dial, since
	if _, err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "no backend of the pool's role left after the drain", func() bool { return srv.Backends(t, user) == 0 })
	if n := p.Stat().OrphansEndedCount() - before; n == 0 {
		t.Fatal("the drain ended no session: they ended by themselves, not through the drain")
	}
}
