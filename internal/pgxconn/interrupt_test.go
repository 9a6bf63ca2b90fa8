package pgxconn

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// A probe that fails (here on a flow a NAT forgot, which swallows it)
// sends no cancel request: pgx would open a connection of its own for
// one, a server process and a new flow for a ping with nothing to
// cancel, at the moment a burst after a freeze needs both. A caller's
// statement that its context interrupts still gets its cancel request.
func TestFailedProbeSendsNoCancelRequest(t *testing.T) {
	srv := pgtest.Shared(t)
	proxy, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cc, err := pgx.ParseConfig(strings.Replace(srv.URL(), srv.Addr(), proxy.Addr(), 1))
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32
	cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	k, err := New(context.Background(), Options[*Conn]{ConnConfig: cc, Pool: runpool.Config{},
		Open: openConn})
	if err != nil {
		t.Fatal(err)
	}
	dialsAfter := func(c *Conn) int32 {
		t.Helper()
		// pgx sends its cancel request from a goroutine of its own once
		// the statement failed, then closes the connection.
		select {
		case <-c.Pgx.PgConn().CleanupDone():
		case <-time.After(20 * time.Second):
			t.Fatal("pgx did not give the connection up")
		}
		return dials.Load()
	}

	probed := dial(t, k)
	before := dials.Load()
	proxy.SetMode(faultproxy.Blackhole)
	proxy.Expire()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err = k.Ping(ctx, probed)
	cancel()
	if err == nil {
		t.Fatal("the probe passed on a forgotten flow")
	}
	k.Close(probed, true) // as the pool destroys it
	if n := dialsAfter(probed) - before; n != 0 {
		t.Fatalf("the failed probe dialled %d times (a cancel request), want none", n)
	}

	proxy.SetMode(faultproxy.Pass)
	used := dial(t, k)
	before = dials.Load()
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = used.Pgx.Exec(ctx, "SELECT pg_sleep(10)")
	cancel()
	if err == nil {
		t.Fatal("pg_sleep(10) ended within 100 ms")
	}
	if n := dialsAfter(used) - before; n != 1 {
		t.Fatalf("the interrupted statement dialled %d times, want 1 (its cancel request)", n)
	}
}
