package conformance

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// The simulator's freeze scenario, scaled to this machine: a NAT that
// forgets flows idle for natIdle, instances frozen longer than that, and
// bursts of 16 concurrent 5 ms queries with 2 s deadlines. The NAT
// forgets the idle flows when natIdle has passed (Expire), not by its own
// idle clock: scaled down to a second, that clock would also forget a
// flow whose request waits that long for its answer on a loaded machine,
// which a real NAT's timeout (30 s and more) never does mid-request.
const (
	natIdle  = time.Second
	frozen   = 2 * time.Second
	query    = 5 * time.Millisecond
	deadline = 2 * time.Second
	burstN   = 16
)

var modes = []faultproxy.Mode{faultproxy.Blackhole, faultproxy.Reset}

// dsnVia is a DSN for user that reaches the server through addr.
func dsnVia(srv *pgtest.Server, user, addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	u := srv.URLFor(user, "pw", user)
	return strings.Replace(u, srv.Host+":"+strconv.Itoa(srv.Port), host+":"+port, 1)
}

// natProxy is a NAT in front of srv that forgets flows idle for idle (0:
// only when told, with Forget).
func natProxy(t *testing.T, srv *pgtest.Server, mode faultproxy.Mode, idle time.Duration) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr(), Mode: mode, IdleTimeout: idle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// checkBurst fails unless every request was served, and bounds the p99
// of a burst after a fault by yardsticks measured in the same run and
// conditions: the warm-up burst before the fault (warm: the dials the
// pool timed, from which it derives its probe deadline, up to two dials
// while no probe has measured the path's round trip) and the same burst
// on a cold pool of the same kind on the same path right after (ref).
// After the fault a caller may wait out one probe deadline, then is
// served as a cold pool serves it; twice each yardstick and a fixed
// margin absorb the noise of one burst's slowest request on a machine
// shared by other tests. It guards against requests that wait on a dead
// connection (a read into a black hole, a probe that outlives its
// deadline, a probe per stale connection) rather than get a fresh one.
// fresh (one dial plus the query) is logged for comparison.
func checkBurst(t *testing.T, r, warm, ref burstResult, fresh time.Duration) {
	t.Helper()
	t.Logf("burst: %v; warm-up: %v; the same burst on a cold pool: %v; fresh dial+query %v", r, warm, ref, fresh.Round(time.Microsecond))
	if r.Failed > 0 {
		t.Fatalf("%d of %d requests failed: %v", r.Failed, r.OK+r.Failed, r.Errors[0])
	}
	if ref.Failed > 0 {
		t.Fatalf("reference burst: %d of %d requests failed: %v", ref.Failed, ref.OK+ref.Failed, ref.Errors[0])
	}
	if limit := 2*(warm.P99+ref.P99) + 300*time.Millisecond; r.P99 > limit {
		t.Fatalf("p99 %v over %v (twice the warm-up's and the cold pool's p99, plus 300 ms)", r.P99, limit)
	}
}

// After idling past the NAT's timeout (a throttled instance whose timers
// still run), a burst is served in full.
func TestIdleBehindNAT(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, a := range adaptertest.Adapters {
		for _, mode := range modes {
			t.Run(a.Name+"/"+mode.String(), func(t *testing.T) {
				user := srv.CreateRole(t, -1)
				nat := natProxy(t, srv, mode, 0)
				dsn := dsnVia(srv, user, nat.Addr())
				db := open(t, a, dsn, runpool.Config{MaxConns: 8})
				warm := burst(db, 8, 20*time.Millisecond, deadline)
				if warm.Failed > 0 {
					t.Fatalf("warm-up: %v", warm)
				}
				time.Sleep(natIdle)
				nat.Expire()
				time.Sleep(500 * time.Millisecond)
				r := burst(db, burstN, query, deadline)
				if nat.Dropped() == 0 {
					t.Fatal("the NAT forgot no flow: the scenario did not happen")
				}
				ref := burst(open(t, a, dsn, runpool.Config{MaxConns: 8}), burstN, query, deadline)
				checkBurst(t, r, warm, ref, freshDial(t, a, dsn, query))
			})
		}
	}
}

// An instance frozen longer than the NAT's timeout serves its next burst
// in full, as soon as it thaws.
func TestFreezeBehindNAT(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, a := range adaptertest.Adapters {
		for _, mode := range modes {
			t.Run(a.Name+"/"+mode.String(), func(t *testing.T) {
				user := srv.CreateRole(t, -1)
				nat := natProxy(t, srv, mode, 0)
				dsn := dsnVia(srv, user, nat.Addr())
				inst := startInstance(t, a.Name, dsn, runpool.Config{MaxConns: 8})
				warm := inst.burst(t, 8, 20*time.Millisecond, deadline)
				if warm.Failed > 0 {
					t.Fatalf("warm-up: %v", warm)
				}
				inst.freeze(t, frozen, nat.Expire)
				r := inst.burst(t, burstN, query, deadline)
				if nat.Dropped() == 0 {
					t.Fatal("the NAT forgot no flow: the scenario did not happen")
				}
				// The reference: a cold instance of the same kind (a child
				// process) on the same path.
				ref := startInstance(t, a.Name, dsn, runpool.Config{MaxConns: 8}).burst(t, burstN, query, deadline)
				checkBurst(t, r, warm, ref, freshDial(t, a, dsn, query))
			})
		}
	}
}

// After pg_terminate_backend of every pooled backend, the very next burst
// is served in full: the ended sessions are noticed on checkout.
func TestTerminatedBackends(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			user := srv.CreateRole(t, -1)
			db := open(t, a, srv.URLFor(user, "pw", user), runpool.Config{MaxConns: 8})
			if r := burst(db, 8, 20*time.Millisecond, deadline); r.Failed > 0 {
				t.Fatalf("warm-up: %v", r)
			}
			if n := srv.TerminateBackends(t, user); n == 0 {
				t.Fatal("no backend terminated")
			}
			r := burst(db, burstN, query, deadline)
			t.Logf("after pg_terminate_backend: %v", r)
			if r.Failed > 0 {
				t.Fatalf("%d failed: %v", r.Failed, r.Errors[0])
			}
		})
	}
}

// After a server restart, and after a crash (SIGKILL) and start, the next
// burst is served in full.
func TestServerRestartAndKill(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			db := open(t, a, srv.URL(), runpool.Config{MaxConns: 8})
			for _, fault := range []struct {
				name string
				do   func() error
			}{
				{"restart", srv.Restart},
				{"kill", func() error {
					if err := srv.Kill(); err != nil {
						return err
					}
					return srv.StartAgain()
				}},
			} {
				if r := burst(db, 8, 20*time.Millisecond, deadline); r.Failed > 0 {
					t.Fatalf("before %s: %v", fault.name, r)
				}
				if err := fault.do(); err != nil {
					t.Fatal(err)
				}
				r := burst(db, burstN, query, deadline)
				t.Logf("after %s: %v", fault.name, r)
				if r.Failed > 0 {
					t.Fatalf("after %s: %d failed: %v", fault.name, r.Failed, r.Errors[0])
				}
			}
		})
	}
}

// awayRetryCap is the longest pause between a caller's dials while the
// server is away (docs/stale-connections.md: 10 ms doubling to 500 ms).
const awayRetryCap = 500 * time.Millisecond

// A burst that arrives while the server is down (a restart that takes
// its time, a failover) is served once it is back: refused dials are
// tried again, not returned, and no caller sleeps much past the server's
// return. It guards against a pool that fails callers while the server
// restarts, gives up on it early, or backs off far beyond awayRetryCap.
// The callers' deadline covers the restart itself, which on a loaded
// machine takes the harness seconds (postgres starting and answering its
// readiness check); the lateness after the server is back is judged
// against the same burst on a fresh pool, run right after.
func TestBurstDuringServerRestart(t *testing.T) {
	const down = 500 * time.Millisecond
	const callerDeadline = 15 * time.Second // within RUNPOOL_SERVER_AWAY_TIMEOUT's 30 s default
	srv := pgtest.Start(t, pgtest.Options{})
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			db := open(t, a, srv.URL(), runpool.Config{MaxConns: 8})
			if r := burst(db, 8, 20*time.Millisecond, deadline); r.Failed > 0 {
				t.Fatalf("before the restart: %v", r)
			}
			if err := srv.Stop(); err != nil {
				t.Fatal(err)
			}
			during := make(chan burstResult, 1)
			start := time.Now()
			go func() { during <- burst(db, burstN, query, callerDeadline) }()
			time.Sleep(down)
			if err := srv.StartAgain(); err != nil {
				t.Fatal(err)
			}
			back := time.Since(start) // the server answered the harness by then
			r := <-during
			ref := burst(open(t, a, srv.URL(), runpool.Config{MaxConns: 8}), burstN, query, callerDeadline)
			late := r.P99 - back
			t.Logf("burst while the server was down for %v and came back after %v: %v; slowest served %v after it was back; the same burst on a fresh pool: %v",
				down, back.Round(time.Millisecond), r, late.Round(time.Millisecond), ref)
			if r.Failed > 0 {
				t.Fatalf("%d failed: %v", r.Failed, r.Errors[0])
			}
			if ref.Failed > 0 {
				t.Fatalf("reference burst: %d failed: %v", ref.Failed, ref.Errors[0])
			}
			if limit := awayRetryCap + 2*ref.P99; late > limit {
				t.Fatalf("the slowest request was served %v after the server was back, over %v (the retry cap %v plus twice a fresh pool's p99)", late, limit, awayRetryCap)
			}
		})
	}
}

// Server-side reclaim: the backends of flows a NAT black-holed leave
// pg_stat_activity within the configured bound, while a pool that keeps
// using its connections never loses one to it.
func TestServerReclaim(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			cfg := runpool.Config{
				MaxConns: 4, MaxConnIdleTime: time.Second, MaintainInterval: 100 * time.Millisecond,
				ServerIdleSessionTimeout: 2 * time.Second,
			}
			abandoned := srv.CreateRole(t, -1)
			// The NAT forgets nothing until the pool is warm: on a loaded
			// machine a dial's or a query's silences outlast its idle
			// limit, and the warm-up would hang on flows it forgot.
			nat, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr(), Mode: faultproxy.Blackhole})
			if err != nil {
				t.Fatal(err)
			}
			defer nat.Close()
			db := open(t, a, dsnVia(srv, abandoned, nat.Addr()), cfg)
			// Four connections: a connection that comes back serves a
			// caller waiting for a dial, so a burst may need fewer.
			for i := 0; i < 5 && srv.Backends(t, abandoned) < 4; i++ {
				if r := burst(db, 4, 200*time.Millisecond, deadline); r.Failed > 0 {
					t.Fatalf("warm-up: %v", r)
				}
			}
			if n := srv.Backends(t, abandoned); n != 4 {
				t.Fatalf("%d backends, want 4", n)
			}
			// From here the flows, idle, go dark after 300 ms.
			nat.SetIdleTimeout(300 * time.Millisecond)

			// A busy pool on a healthy path, with the same settings.
			busy := srv.CreateRole(t, -1)
			live := open(t, a, srv.URLFor(busy, "pw", busy), cfg)
			start := time.Now()
			for srv.Backends(t, abandoned) > 0 {
				if time.Since(start) > cfg.ServerIdleSessionTimeout+3*time.Second {
					t.Fatalf("%d abandoned backends still there after %v", srv.Backends(t, abandoned), time.Since(start))
				}
				if r := burst(live, 4, time.Millisecond, deadline); r.Failed > 0 {
					t.Fatalf("the busy pool lost a request: %v", r.Errors[0])
				}
				time.Sleep(200 * time.Millisecond)
			}
			if nat.Dropped() == 0 {
				t.Fatal("the NAT forgot no flow: the scenario did not happen")
			}
			t.Logf("abandoned backends reclaimed %v after the flows went dark (bound %v)", time.Since(start).Round(10*time.Millisecond), cfg.ServerIdleSessionTimeout)
			if s := live.Stat(); s.StaleDiscardCount() != 0 || s.BrokenOnReleaseCount() != 0 {
				t.Fatalf("the busy pool lost connections: stale %d broken %d", s.StaleDiscardCount(), s.BrokenOnReleaseCount())
			}
		})
	}
}

var _ = fmt.Sprint
