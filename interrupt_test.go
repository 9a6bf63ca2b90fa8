package runpool_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

// interruptSetup opens a pool of three connections through a fault proxy
// in mode, all idle and trusted without a probe (ProbeAfterIdle is long),
// and returns it with the proxy and the three backends' PIDs.
func interruptSetup(t *testing.T, mode faultproxy.Mode, logs *logRecorder) (*pgxadapter.Pool, *faultproxy.Proxy, []uint32) {
	t.Helper()
	proxy := startProxy(t, faultproxy.Config{Mode: mode})
	p, _, _ := openPool(t, runpool.Config{MaxConns: 3, ProbeAfterIdle: time.Minute, MaintainInterval: 50 * time.Millisecond, Logger: slog.New(logs)},
		through(proxy))
	ctx := ctxT(t, 20*time.Second)
	var pids []uint32
	var held []*pgxadapter.Conn
	for range 3 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		pids = append(pids, c.Conn().PgConn().PID())
	}
	for _, c := range held {
		c.Release()
	}
	return p, proxy, pids
}

// interruptSlowQuery runs pg_sleep on a connection of p until its 300 ms
// deadline; during runs, once the query is on its way. It returns the
// query's backend PID and error.
func interruptSlowQuery(t *testing.T, p *pgxadapter.Pool, during func()) (uint32, error) {
	t.Helper()
	c, err := p.Acquire(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	pid := c.Conn().PgConn().PID()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if during != nil {
		time.AfterFunc(100*time.Millisecond, during)
	}
	_, err = c.Exec(ctx, "SELECT pg_sleep(30)")
	c.Release()
	return pid, err
}

// awaitVerdict waits, at most limit, for the pool to log its verdict on
// an interrupted connection; a pool that judges at once logs none.
func awaitVerdict(t *testing.T, logs *logRecorder, limit time.Duration) {
	start := time.Now()
	defer func() {
		t.Logf("verdict after %v: %+v", time.Since(start), logs.find("runpool: interrupted connection"))
	}()
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if len(logs.find("runpool: interrupted connection")) > 0 {
			return
		}
	}
}

// checkoutSiblings borrows two connections at once and returns their
// PIDs.
func checkoutSiblings(t *testing.T, p *pgxadapter.Pool) []uint32 {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	var pids []uint32
	for range 2 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("a connection handed out does not answer: %v", err)
		}
		pids = append(pids, c.Conn().PgConn().PID())
	}
	return pids
}

// Guards against: a query its caller's deadline cut short on a healthy
// path condemning the pool's idle connections to a probe each and
// queueing its session as an orphan, as a dead path would.
func TestCancelledSlowQueryCostsNoProbes(t *testing.T) {
	logs := &logRecorder{}
	p, _, pids := interruptSetup(t, faultproxy.Pass, logs)
	srv := pgtest.Shared(t)

	before := p.Stat().ProbeCount()
	pid, err := interruptSlowQuery(t, p, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow query: %v, want the caller's deadline", err)
	}
	awaitVerdict(t, logs, 10*time.Second)
	siblings := checkoutSiblings(t, p)
	if n := p.Stat().ProbeCount() - before; n != 0 {
		t.Errorf("%d idle connections probed after a cancelled query on a healthy path, want none", n)
	}
	for _, s := range siblings {
		if s != pids[0] && s != pids[1] && s != pids[2] || s == pid {
			t.Errorf("checkout handed out backend %d, want one of the idle ones %v other than %d", s, pids, pid)
		}
	}
	// The server stops the query: pgx's cancel request gets through.
	start := time.Now()
	defer func() { t.Logf("backend gone after %v", time.Since(start)) }()
	waitFor(t, 10*time.Second, "the cancelled query's backend still runs pg_sleep", func() bool {
		return srv.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", int64(pid)) == 0
	})
	time.Sleep(200 * time.Millisecond) // maintainer ticks, which would end noted orphans
	if recs := logs.find("runpool: ended orphaned sessions"); len(recs) != 0 {
		t.Errorf("orphans noted: %+v, want none", recs)
	}
}

// Guards against: a path that dies while a query runs (a NAT that forgets
// its flows silently) no longer condemning the connections idle on it
// once a caller's deadline ends the query.
func TestQueryOnADeadPathCondemnsSiblings(t *testing.T) {
	testDeadPathCondemnsSiblings(t, faultproxy.Blackhole)
}

// Guards against: as TestQueryOnADeadPathCondemnsSiblings, with a NAT
// that resets the flows it forgot.
func TestQueryOnAResetPathCondemnsSiblings(t *testing.T) {
	testDeadPathCondemnsSiblings(t, faultproxy.Reset)
}

func testDeadPathCondemnsSiblings(t *testing.T, mode faultproxy.Mode) {
	logs := &logRecorder{}
	p, proxy, pids := interruptSetup(t, mode, logs)

	before := p.Stat().ProbeCount()
	if _, err := interruptSlowQuery(t, p, proxy.Forget); err == nil {
		t.Fatal("the query on a dead path succeeded")
	}
	// Not waiting for the verdict: meanwhile no connection is trusted.
	for _, s := range checkoutSiblings(t, p) {
		for _, old := range pids {
			if s == old {
				t.Errorf("backend %d, on the dead path, was handed out", s)
			}
		}
	}
	if n := p.Stat().ProbeCount() - before; n == 0 {
		t.Error("no idle connection was probed after the path died under a query")
	}
}

// Guards against: a deadline pgx survives (a wait for a notification
// that timed out) being taken, once the connection later breaks for
// another reason (the server ended its session), for an interruption the
// server answered, which spares the siblings their probe.
func TestSessionEndedAfterASurvivedDeadlineCondemnsSiblings(t *testing.T) {
	logs := &logRecorder{}
	p, _, _ := interruptSetup(t, faultproxy.Pass, logs)
	srv := pgtest.Shared(t)
	ctx := ctxT(t, 20*time.Second)

	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err = c.Conn().PgConn().WaitForNotification(wctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for a notification: %v, want its deadline", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("the connection did not survive the wait's deadline: %v", err)
	}
	pid := c.Conn().PgConn().PID()
	time.AfterFunc(100*time.Millisecond, func() { srv.Exec(t, "SELECT pg_terminate_backend($1)", int64(pid)) })
	if _, err := c.Exec(ctx, "SELECT pg_sleep(30)"); err == nil {
		t.Fatal("the query in a terminated session succeeded")
	}
	before := p.Stat().ProbeCount()
	c.Release()
	awaitVerdict(t, logs, time.Second) // the server's FATAL is at hand: no wait for an answer
	checkoutSiblings(t, p)
	if n := p.Stat().ProbeCount() - before; n == 0 {
		t.Error("no idle connection was probed after the server ended a session under a query")
	}
}

// Guards against: bytes the server sent before the path died, still
// waiting in the socket when the caller's deadline cut its reading of a
// result short, taken for the server's answer after the cut, which spares
// the siblings on the dead path.
func TestDeadPathUnderAResultCondemnsSiblings(t *testing.T) {
	logs := &logRecorder{}
	p, proxy, pids := interruptSetup(t, faultproxy.Blackhole, logs)
	c, err := p.Acquire(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	rows, err := c.Query(ctx, "SELECT g, repeat('x', 1000) FROM generate_series(1, 100000) g")
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatalf("no first row: %v", rows.Err())
	}
	time.Sleep(100 * time.Millisecond) // the socket's buffers fill
	proxy.Forget()
	<-ctx.Done() // the deadline passes while the caller is not reading
	for rows.Next() {
	}
	rows.Close()
	if rows.Err() == nil {
		t.Fatal("the result on a dead path was read to its end")
	}
	before := p.Stat().ProbeCount()
	c.Release()
	awaitVerdict(t, logs, 10*time.Second)
	if got := logs.find("runpool: interrupted connection closed, the server answered"); len(got) != 0 {
		t.Errorf("verdict %+v on a dead path", got)
	}
	for _, s := range checkoutSiblings(t, p) {
		for _, old := range pids {
			if s == old {
				t.Errorf("backend %d, on the dead path, was handed out", s)
			}
		}
	}
	if n := p.Stat().ProbeCount() - before; n == 0 {
		t.Error("no idle connection was probed after the path died under a result")
	}
}
