package pgxconn

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// Two servers behind one address (a load balancer over replicas, a
// failover): a session of another instance on the other server, with
// the same role, the same PID and even the same start to the
// microsecond, is not ended through a connection that landed there; the
// pool's own orphan is ended through a connection on its own server,
// whatever the clocks say, and a record a minute off matches nothing.
// Before, the match was PID, user, idle and a start within 10 s of this
// machine's clock at the dial, through whichever connection was at hand,
// and ended the other instance's session.
func TestEndOrphansOnlyOnTheirServer(t *testing.T) {
	a, b, role, samePIDs := pgtest.Twins(t)
	proxy, err := faultproxy.Start(faultproxy.Config{Target: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	url := strings.Replace(a.URLFor(role, "pw", role), a.Addr(), proxy.Addr(), 1)
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	s := Setup(cc, runpool.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	orphan := connect(t, s) // on A
	mine, ok := sessionOf(orphan)
	if !ok {
		t.Fatal("no session recorded at connect time")
	}
	proxy.SetTarget(b.Addr())
	stranger := pgtest.ConnectWithPID(t, ctx, url, mine.PID, samePIDs) // another instance's, on B
	other := Setup(cc, runpool.Config{})
	if err := other.AfterConnect(ctx, stranger); err != nil {
		t.Fatal(err)
	}
	theirs, _ := sessionOf(stranger)
	t.Logf("the orphan: PID %d on A; the other instance's session: PID %d on B", mine.PID, theirs.PID)
	via := connect(t, s) // the pool's next connection, on B
	if v, _ := sessionOf(via); v.Server.Equal(mine.Server) || !v.Server.Equal(theirs.Server) {
		t.Fatalf("servers: via %v, orphan %v, stranger %v: the proxy did not switch", v.Server, mine.Server, theirs.Server)
	}

	// The worst case: the other server's session has the orphan's PID
	// and start; only the server tells them apart.
	worst := mine
	worst.PID, worst.Began = theirs.PID, theirs.Began
	if n, err := endOrphans(ctx, via, []runpool.Orphan{mine, worst}); err != nil || n != 0 {
		t.Fatalf("ended %d (err %v) on the other server (PIDs equal: %v), want 0", n, err, samePIDs)
	}
	if err := stranger.Ping(ctx); err != nil {
		t.Fatalf("the other instance's session was ended: %v", err)
	}

	// Back on A: records a minute off (what a clock a minute off would
	// have noted) match nothing; the server's own record matches.
	proxy.SetTarget(a.Addr())
	home := connect(t, s)
	for _, skew := range []time.Duration{-time.Minute, time.Minute} {
		off := mine
		off.Began = off.Began.Add(skew)
		if n, err := endOrphans(ctx, home, []runpool.Orphan{off}); err != nil || n != 0 {
			t.Fatalf("a record %v off: ended %d (err %v), want 0", skew, n, err)
		}
	}
	if n, err := endOrphans(ctx, home, []runpool.Orphan{mine}); err != nil || n != 1 {
		t.Fatalf("the pool's own orphan: ended %d (err %v), want 1", n, err)
	}
}
