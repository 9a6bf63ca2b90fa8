package runpool_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/pgxadapter"
)

// sessionPID borrows a connection within ctx and returns its backend PID.
func sessionPID(t *testing.T, ctx context.Context, p *pgxadapter.Pool) uint32 {
	t.Helper()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	return c.Conn().PgConn().PID()
}

// Guards against: a caller whose deadline ends during its checkout probe
// destroying the healthy connection probed (and noting it as an orphan).
// A 20 ms proxy latency each way makes the probe outlast the caller's
// 10 ms deadline; the connection must stay in the pool.
func TestProbeOutlivesTheCallersDeadline(t *testing.T) {
	logs := &logRecorder{}
	proxy := startProxy(t, faultproxy.Config{Latency: 20 * time.Millisecond})
	p, _, _ := openPool(t, runpool.Config{MaxConns: 2, ProbeAfterIdle: 50 * time.Millisecond, MaintainInterval: 50 * time.Millisecond,
		Logger: slog.New(logs)}, through(proxy))
	ctx := ctxT(t, 20*time.Second)
	pid := sessionPID(t, ctx, p)
	time.Sleep(100 * time.Millisecond) // idle past ProbeAfterIdle: due for a probe

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	c, err := p.Acquire(short)
	cancel()
	if err == nil {
		c.Release()
		t.Fatal("served within 10 ms through a 40 ms round trip: the connection was not probed")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire: %v, want the caller's deadline", err)
	}
	waitFor(t, 5*time.Second, "the probed connection never came back idle", func() bool {
		return p.Stat().IdleConns() == 1
	})
	if got := sessionPID(t, ctx, p); got != pid {
		t.Fatalf("backend %d after the cut-short checkout, want %d: the probed connection was closed", got, pid)
	}
	if n := p.Stat().NewConnsCount(); n != 1 {
		t.Errorf("%d connections opened, want 1", n)
	}
	time.Sleep(200 * time.Millisecond) // maintainer ticks, which would end noted orphans
	if recs := logs.find("runpool: ended orphaned sessions"); len(recs) != 0 {
		t.Errorf("orphans noted: %+v, want none", recs)
	}
}

// Guards against: probes failing every healthy connection on a path
// whose round trip exceeds ProbeTimeout, so each checkout after an idle
// spell dials anew. 300 ms proxy latency each way (a round trip over
// 600 ms); after each idle spell the one connection is reused, and a
// black-holed one is still discarded by its probe.
func TestProbeOnADistantServer(t *testing.T) {
	const idle = 200 * time.Millisecond
	proxy := startProxy(t, faultproxy.Config{Latency: 300 * time.Millisecond})
	p, _, _ := openPool(t, runpool.Config{MaxConns: 2, ProbeAfterIdle: idle, DialTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler)},
		through(proxy))
	ctx := ctxT(t, 60*time.Second)
	pid := sessionPID(t, ctx, p)
	for i := range 3 {
		time.Sleep(2 * idle)
		if got := sessionPID(t, ctx, p); got != pid {
			t.Fatalf("checkout %d after idling: backend %d, want %d (the probe failed a healthy connection)", i+1, got, pid)
		}
	}
	st := p.Stat()
	t.Logf("probes %d, failed %d, connections opened %d, hedged %d", st.ProbeCount(), st.ProbeFailureCount(), st.NewConnsCount(), st.HedgedDialCount())
	if st.ProbeCount() < 3 || st.ProbeFailureCount() != 0 || st.NewConnsCount() != 1 || st.HedgedDialCount() != 0 {
		t.Fatal("want 3 probes or more, none failed, one connection opened, no hedged dial")
	}

	proxy.Forget() // the path to the connection's flow dies
	time.Sleep(2 * idle)
	if got := sessionPID(t, ctx, p); got == pid {
		t.Fatal("the black-holed connection was handed out")
	}
	if n := p.Stat().ProbeFailureCount(); n != 1 {
		t.Fatalf("%d failed probes, want the black-holed connection's", n)
	}
}
