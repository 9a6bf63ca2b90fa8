package conformance

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// An instance whose host vanishes while it holds every slot: its
// packets, its dying kernel's FIN and RST included, never reach the
// server, as when a VM is stopped or the network between them is cut.
//
//   - Idle sessions end on the server's keepalive probes, which runpool
//     asks for on every session (ServerKeepAliveIdle): within the idle
//     time plus three probes, max(idle/3, 1 s) apart. Then every slot is
//     usable by a fresh instance, none lost.
//   - A session whose reply the vanished host never acknowledged is not
//     idle to the server's kernel: it retransmits the reply (for about
//     15 minutes with Linux's tcp_retries2) and sends no keepalive
//     meanwhile. The backend, its reply written, is idle to PostgreSQL, so
//     idle_session_timeout (ServerIdleSessionTimeout) ends it; without
//     it, the slot is still held when the keepalive bound has passed.
func TestSlotsFreedWhenHostVanishes(t *testing.T) {
	srv := pgtest.Shared(t)
	blackhole := newBlackhole(t, srv)
	const budget = 4
	const idle = time.Second
	keepalive := idle + 3*max(idle/3, time.Second)
	const query = 500 * time.Millisecond
	for _, tc := range []struct {
		name        string
		inFlight    bool          // the host vanishes while its queries run
		idleSession time.Duration // ServerIdleSessionTimeout, 0 for off
		bound       time.Duration // the slots are free within this; 0: still held after the keepalive bound
	}{
		{name: "idle", bound: keepalive},
		{name: "reply in flight, idle_session_timeout", inFlight: true, idleSession: 2 * time.Second, bound: query + 2*time.Second},
		{name: "reply in flight, keepalives only", inFlight: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := runpool.Config{Budget: budget, MaxConns: budget, BudgetSlots: runpool.BudgetSlotsAdvisory,
				ServerKeepAliveIdle: idle, ServerIdleSessionTimeout: tc.idleSession}
			if tc.idleSession > 0 {
				cfg.MaxConnIdleTime = tc.idleSession / 2 // it must exceed the pool's own idle limit
			}
			a := adaptertest.Adapters[0]
			user := srv.CreateRole(t, -1)
			t.Cleanup(func() { srv.TerminateBackends(t, user) })
			dsn := srv.URLFor(user, "pw", user)
			child := startHoldingSlots(t, srv, a, user, cfg)
			time.Sleep(300 * time.Millisecond) // the child's delayed ACKs of the burst's replies go out
			if tc.inFlight {
				child.start(t, budget, query, 10*time.Second)
				time.Sleep(query / 4) // the queries reach the server; their replies will not reach the child
			}
			for _, port := range clientPorts(t, srv, user) {
				blackhole.drop(t, srv.Port, port)
			}
			vanished := time.Now()
			if err := child.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			if tc.bound == 0 {
				time.Sleep(keepalive + 2*time.Second)
				n := slotLocks(t, srv, user)
				t.Logf("%d of %d slots held %v after the host vanished (keepalive bound %v)", n, cfg.Slots(), time.Since(vanished).Round(time.Millisecond), keepalive)
				if n != cfg.Slots() {
					t.Fatalf("%d of %d slots held past the keepalive bound: a reply the host never acknowledged did not hold its session", n, cfg.Slots())
				}
				return
			}
			for slotLocks(t, srv, user) > 0 {
				if time.Since(vanished) > 3*tc.bound {
					t.Fatalf("%d slots still held %v after the host vanished; the bound is %v", slotLocks(t, srv, user), time.Since(vanished).Round(time.Millisecond), tc.bound)
				}
				time.Sleep(20 * time.Millisecond)
			}
			freed := time.Since(vanished)
			db := open(t, a, dsn, cfg)
			r := burst(db, cfg.Slots(), 100*time.Millisecond, 10*time.Second)
			t.Logf("host vanished to every slot free: %v (bound %v); then %d queries in a fresh instance: %v",
				freed.Round(time.Millisecond), tc.bound, cfg.Slots(), r)
			if r.Failed > 0 {
				t.Fatalf("%d failed: %s", r.Failed, r.Errors[0])
			}
			if freed < idle {
				t.Fatalf("the slots were free %v after the host vanished, before any keepalive probe or idle timeout: the blackhole let the close through", freed)
			}
			if freed > tc.bound+time.Second {
				t.Fatalf("the slots took %v to free, over the bound of %v", freed, tc.bound)
			}
			if st := db.Stat(); st.BackoffCount() > 0 {
				t.Fatalf("the fresh instance backed off %d times: slots were not free", st.BackoffCount())
			}
		})
	}
}

// clientPorts lists the local ports of user's sessions, as the server
// sees them.
func clientPorts(t *testing.T, srv *pgtest.Server, user string) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT client_port FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'`, user)
	ports, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, len(ports))
	for i, p := range ports {
		out[i] = int(p)
	}
	return out
}

// blackhole drops loopback packets between chosen ports with iptables,
// and removes its rules when the test ends.
type blackhole struct{ cmd, tag string }

// newBlackhole skips the test where iptables cannot change the rules
// (not root, no iptables: scripts/deps installs it) or the server is not
// on this machine's loopback.
func newBlackhole(t *testing.T, srv *pgtest.Server) *blackhole {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("dropping packets needs root (iptables)")
	}
	if ip := net.ParseIP(srv.Host); ip == nil || !ip.IsLoopback() {
		t.Skipf("the server at %s is not on loopback, where the blackhole drops packets", srv.Host)
	}
	cmd, err := exec.LookPath("iptables")
	if err != nil {
		cmd = "/usr/sbin/iptables" // root's PATH may lack /usr/sbin
	}
	b := &blackhole{cmd: cmd, tag: fmt.Sprintf("runpool-test-%d", os.Getpid())}
	// A rule of the same kind as drop's, on a port nothing uses: a kernel
	// without the modules drop needs refuses it.
	probe := b.rule(9, 9) // the discard port
	if out, err := exec.Command(cmd, append([]string{"-w", "-I"}, probe...)...).CombinedOutput(); err != nil {
		t.Skipf("iptables cannot add a rule here (apt-get install -y iptables; scripts/deps does): %v: %s", err, out)
	}
	if out, err := exec.Command(cmd, append([]string{"-w", "-D"}, probe...)...).CombinedOutput(); err != nil {
		t.Fatalf("iptables: removing a rule: %v: %s", err, out)
	}
	return b
}

// rule is the INPUT rule that drops loopback packets from port from to
// port to.
func (b *blackhole) rule(from, to int) []string {
	return []string{"INPUT", "-i", "lo", "-p", "tcp", "--sport", strconv.Itoa(from), "--dport", strconv.Itoa(to),
		"-m", "comment", "--comment", b.tag, "-j", "DROP"}
}

// drop discards every packet from either port to the other on loopback.
func (b *blackhole) drop(t *testing.T, a, z int) {
	t.Helper()
	for _, dir := range [][2]int{{a, z}, {z, a}} {
		rule := b.rule(dir[0], dir[1])
		if out, err := exec.Command(b.cmd, append([]string{"-w", "-I"}, rule...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command(b.cmd, append([]string{"-w", "-D"}, rule...)...).CombinedOutput(); err != nil {
				t.Errorf("iptables: removing a rule: %v: %s", err, out)
			}
		})
	}
}
