package pgxadapter_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

// hookConfig returns a Config for a fresh role of the shared server, so
// the test sees only its own backends, and the server and role.
// ProbeAfterIdle is an hour: runpool probes nothing a test does not ask
// for.
func hookConfig(t *testing.T) (*pgxadapter.Config, *pgtest.Server, string) {
	t.Helper()
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	cfg, err := pgxadapter.ParseConfig(srv.URLFor(user, "pw", user))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	cfg.Pool.ProbeAfterIdle = time.Hour
	cfg.Pool.Logger = slog.New(slog.DiscardHandler)
	return cfg, srv, user
}

func openPool(t *testing.T, cfg *pgxadapter.Config) *pgxadapter.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pgxadapter.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func acquire(t *testing.T, p *pgxadapter.Pool) *pgxadapter.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pidOf(c *pgx.Conn) uint32 { return c.PgConn().PID() }

func backendAlive(t *testing.T, srv *pgtest.Server, pid uint32) bool {
	t.Helper()
	return srv.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", int32(pid)) == 1
}

// eventually polls cond for up to 10 s: closes and AfterRelease run in
// the background.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
	}
}

// pidSet records the PIDs a hook saw.
type pidSet struct {
	mu   sync.Mutex
	pids []uint32
}

func (s *pidSet) add(c *pgx.Conn) {
	s.mu.Lock()
	s.pids = append(s.pids, pidOf(c))
	s.mu.Unlock()
}

func (s *pidSet) has(pid uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.pids, pid)
}

func (s *pidSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pids)
}

// A credential BeforeConnect sets reaches the next dial (not the pool's
// ConnConfig), as an IAM token or rotated password must.
func TestBeforeConnectReachesNextDial(t *testing.T) {
	cfg, srv, first := hookConfig(t)
	second := srv.CreateRole(t, -1)
	var user atomic.Value
	user.Store(first)
	var dials atomic.Int32
	cfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
		dials.Add(1)
		cc.User = user.Load().(string)
		cc.RuntimeParams["application_name"] = "dial-" + cc.User
		return nil
	}
	p := openPool(t, cfg)
	ctx := context.Background()
	who := func() (usr, app string) {
		t.Helper()
		if err := p.QueryRow(ctx, "SELECT usename::text, application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()").Scan(&usr, &app); err != nil {
			t.Fatal(err)
		}
		return usr, app
	}
	if u, a := who(); u != first || a != "dial-"+first {
		t.Fatalf("first connection is %s (%s), want %s", u, a, first)
	}
	user.Store(second)
	p.Reset() // the next checkout dials
	if u, a := who(); u != second || a != "dial-"+second {
		t.Fatalf("after the change a new connection is %s (%s), want %s", u, a, second)
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("BeforeConnect ran %d times for 2 dials", n)
	}
	if p.Config().ConnConfig.User != first {
		t.Fatalf("BeforeConnect changed the pool's ConnConfig: user %s", p.Config().ConnConfig.User)
	}
}

// An error from BeforeConnect fails the dial and reaches the caller; the
// next dial runs as usual (with budget slots on, the failed dial gave the
// pass back).
func TestBeforeConnectErrorFailsDial(t *testing.T) {
	for _, slots := range []string{runpool.BudgetSlotsOff, runpool.BudgetSlotsAdvisory} {
		t.Run("slots="+slots, func(t *testing.T) {
			cfg, _, _ := hookConfig(t)
			if slots != runpool.BudgetSlotsOff {
				cfg.Pool.Budget, cfg.Pool.MaxInstances, cfg.Pool.BudgetSlots = 10, 1, slots
			}
			boom := errors.New("no token")
			var fail atomic.Bool
			cfg.BeforeConnect = func(context.Context, *pgx.ConnConfig) error {
				if fail.Load() {
					return boom
				}
				return nil
			}
			p := openPool(t, cfg)
			held := acquire(t, p) // the only connection: the next checkout dials
			defer held.Release()
			fail.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := p.Acquire(ctx); !errors.Is(err, boom) {
				t.Fatalf("Acquire: %v, want BeforeConnect's error", err)
			}
			fail.Store(false)
			c, err := p.Acquire(ctx)
			if err != nil {
				t.Fatalf("Acquire after the hook recovered: %v", err)
			}
			c.Release()
		})
	}
}

// BeforeAcquire returning false closes that connection and the checkout
// gets another.
func TestBeforeAcquireFalseGetsAnother(t *testing.T) {
	cfg, srv, _ := hookConfig(t)
	var reject atomic.Uint32
	var closed pidSet
	cfg.BeforeAcquire = func(_ context.Context, c *pgx.Conn) bool { return pidOf(c) != reject.Load() }
	cfg.BeforeClose = closed.add
	p := openPool(t, cfg)
	c := acquire(t, p)
	first := pidOf(c.Conn())
	c.Release()
	reject.Store(first)
	c = acquire(t, p)
	defer c.Release()
	if got := pidOf(c.Conn()); got == first {
		t.Fatalf("got the rejected connection %d", got)
	}
	eventually(t, "the rejected connection is closed", func() bool { return closed.has(first) && !backendAlive(t, srv, first) })
}

// PrepareConn's error fails the checkout: with false the connection is
// closed, with true it stays in the pool.
func TestPrepareConnErrorFailsAcquire(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	boom := errors.New("not ready")
	var verdict atomic.Int32 // 0 ok, 1 false+error, 2 true+error
	var closed pidSet
	cfg.PrepareConn = func(context.Context, *pgx.Conn) (bool, error) {
		switch verdict.Load() {
		case 1:
			return false, boom
		case 2:
			return true, boom
		}
		return true, nil
	}
	cfg.BeforeAcquire = func(context.Context, *pgx.Conn) bool { t.Error("BeforeAcquire ran beside PrepareConn"); return false }
	cfg.BeforeClose = closed.add
	p := openPool(t, cfg)
	ctx := context.Background()
	c := acquire(t, p)
	first := pidOf(c.Conn())
	c.Release()

	verdict.Store(2)
	if _, err := p.Acquire(ctx); !errors.Is(err, boom) {
		t.Fatalf("true, error: Acquire: %v, want PrepareConn's error", err)
	}
	verdict.Store(0)
	c = acquire(t, p)
	if got := pidOf(c.Conn()); got != first {
		t.Fatalf("true, error: the connection left the pool (got %d, want %d)", got, first)
	}
	c.Release()

	verdict.Store(1)
	if err := p.Ping(ctx); !errors.Is(err, boom) {
		t.Fatalf("false, error: Ping: %v, want PrepareConn's error", err)
	}
	eventually(t, "false, error: the connection is closed", func() bool { return closed.has(first) })
}

// A PrepareConn that rejects every connection fails the checkout instead
// of dialling without end.
func TestPrepareConnRejectingAllFails(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	var calls atomic.Int32
	cfg.PrepareConn = func(context.Context, *pgx.Conn) (bool, error) { calls.Add(1); return false, nil }
	p := openPool(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Acquire(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("Acquire: %v (context: %v), want PrepareConn's rejections", err, ctx.Err())
	}
	if n, max := calls.Load(), cfg.MaxConns+1; n != max {
		t.Fatalf("PrepareConn ran %d times, want MaxConns+1 = %d", n, max)
	}
}

// AfterRelease false closes the released connection; true keeps it.
func TestAfterReleaseFalseCloses(t *testing.T) {
	cfg, srv, _ := hookConfig(t)
	var keep atomic.Bool
	var released, closed pidSet
	cfg.AfterRelease = func(c *pgx.Conn) bool { released.add(c); return keep.Load() }
	cfg.BeforeClose = closed.add
	p := openPool(t, cfg)
	keep.Store(true)
	c := acquire(t, p)
	first := pidOf(c.Conn())
	c.Release()
	eventually(t, "AfterRelease runs", func() bool { return released.has(first) && p.Stat().IdleConns() == 1 })
	c = acquire(t, p)
	if got := pidOf(c.Conn()); got != first {
		t.Fatalf("AfterRelease true: the connection was not kept (got %d, want %d)", got, first)
	}
	keep.Store(false)
	c.Release()
	eventually(t, "AfterRelease false closes the connection", func() bool {
		return closed.has(first) && !backendAlive(t, srv, first) && p.Stat().TotalConns() == 0
	})
}

// BeforeClose sees every connection the pool closes, here at Close.
func TestBeforeCloseSeesEachClosed(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	var closed pidSet
	cfg.BeforeClose = closed.add
	p := openPool(t, cfg)
	var pids []uint32
	var held []*pgxadapter.Conn
	for range 3 {
		c := acquire(t, p)
		pids = append(pids, pidOf(c.Conn()))
		held = append(held, c)
	}
	for _, c := range held {
		c.Release()
	}
	p.Close()
	for _, pid := range pids {
		if !closed.has(pid) {
			t.Fatalf("BeforeClose did not see %d (saw %v)", pid, closed.pids)
		}
	}
	if closed.len() != 3 {
		t.Fatalf("BeforeClose saw %v, want %v", closed.pids, pids)
	}
}

// ShouldPing true has a connection runpool trusts probed; false does not
// waive a probe runpool's own checks call for. Its params carry the
// connection and its idle time.
func TestShouldPingForcesPing(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	var force atomic.Bool
	var mu sync.Mutex
	var seen []pgxadapter.ShouldPingParams
	cfg.ShouldPing = func(_ context.Context, sp pgxadapter.ShouldPingParams) bool {
		mu.Lock()
		seen = append(seen, sp)
		mu.Unlock()
		return force.Load()
	}
	p := openPool(t, cfg)
	c := acquire(t, p)
	c.Release()
	time.Sleep(20 * time.Millisecond)
	probes := p.Stat().ProbeCount()
	c = acquire(t, p)
	conn := c.Conn()
	c.Release()
	if n := p.Stat().ProbeCount(); n != probes {
		t.Fatalf("ShouldPing false: %d probes, want none", n-probes)
	}
	mu.Lock()
	last := seen[len(seen)-1]
	mu.Unlock()
	if last.Conn != conn || last.IdleDuration < 20*time.Millisecond {
		t.Fatalf("ShouldPing got conn %p idle %v, want %p idle >= 20ms", last.Conn, last.IdleDuration, conn)
	}
	force.Store(true)
	acquire(t, p).Release()
	if n := p.Stat().ProbeCount(); n != probes+1 {
		t.Fatalf("ShouldPing true: %d probes, want 1", n-probes)
	}

	// runpool's own rule still probes a connection idle past ProbeAfterIdle.
	cfg2, _, _ := hookConfig(t)
	cfg2.Pool.ProbeAfterIdle = time.Millisecond
	cfg2.ShouldPing = func(context.Context, pgxadapter.ShouldPingParams) bool { return false }
	p2 := openPool(t, cfg2)
	acquire(t, p2).Release() // opens the connection
	time.Sleep(20 * time.Millisecond)
	acquire(t, p2).Release()
	if n := p2.Stat().ProbeCount(); n != 1 {
		t.Fatalf("ShouldPing false waived runpool's probe: %d probes, want 1", n)
	}
}

// tracer records what the pool reports to a pgxpool-style tracer.
type tracer struct {
	mu     sync.Mutex
	events []string
	starts int
	ends   []pgxadapter.TraceAcquireEndData
	rels   []*pgx.Conn
	pool   *pgxadapter.Pool
	ctxOK  bool
}

type traceKey struct{}

func (tr *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (tr *tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (tr *tracer) TraceAcquireStart(ctx context.Context, p *pgxadapter.Pool, _ pgxadapter.TraceAcquireStartData) context.Context {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events = append(tr.events, "start")
	tr.starts++
	tr.pool = p
	return context.WithValue(ctx, traceKey{}, tr.starts)
}

func (tr *tracer) TraceAcquireEnd(ctx context.Context, p *pgxadapter.Pool, d pgxadapter.TraceAcquireEndData) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events = append(tr.events, "end")
	tr.ends = append(tr.ends, d)
	tr.ctxOK = ctx.Value(traceKey{}) == tr.starts && p == tr.pool
}

func (tr *tracer) TraceRelease(p *pgxadapter.Pool, d pgxadapter.TraceReleaseData) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events = append(tr.events, "release")
	tr.rels = append(tr.rels, d.Conn)
	if p != tr.pool {
		tr.ctxOK = false
	}
}

func (tr *tracer) take() (events []string, ends []pgxadapter.TraceAcquireEndData, rels []*pgx.Conn, ok bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	events, ends, rels, ok = tr.events, tr.ends, tr.rels, tr.ctxOK
	tr.events, tr.ends, tr.rels = nil, nil, nil
	return events, ends, rels, ok
}

// A ConnConfig.Tracer implementing AcquireTracer and ReleaseTracer sees
// every checkout (Acquire and the query methods') and release, with the
// pool, the connection, the error, and its own context from start to end.
func TestTracerAcquireRelease(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	tr := &tracer{}
	cfg.ConnConfig.Tracer = tr
	p := openPool(t, cfg)
	ctx := context.Background()

	c := acquire(t, p)
	conn := c.Conn()
	c.Release()
	c.Release() // a second Release is ignored, and not traced
	events, ends, rels, ok := tr.take()
	if !slices.Equal(events, []string{"start", "end", "release"}) || !ok || tr.pool != p {
		t.Fatalf("Acquire, Release: events %v, context and pool passed on: %v", events, ok)
	}
	if ends[0].Conn != conn || ends[0].Err != nil || rels[0] != conn {
		t.Fatalf("Acquire, Release: end %+v, release %p; want conn %p", ends[0], rels[0], conn)
	}

	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	var one int
	if err := p.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	events, ends, rels, _ = tr.take()
	if want := []string{"start", "end", "release", "start", "end", "release"}; !slices.Equal(events, want) {
		t.Fatalf("Exec, QueryRow: events %v, want %v", events, want)
	}
	if ends[0].Conn != rels[0] || ends[1].Conn != rels[1] {
		t.Fatal("Exec, QueryRow: a release names another connection than its checkout")
	}

	p.Close()
	_, err := p.Acquire(ctx)
	events, ends, _, _ = tr.take()
	if !slices.Equal(events, []string{"start", "end"}) || ends[0].Conn != nil || !errors.Is(ends[0].Err, err) || err == nil {
		t.Fatalf("Acquire on a closed pool: events %v, end %+v, err %v", events, ends, err)
	}
}

// Reset closes idle connections at once and borrowed ones on release;
// the pool stays open.
func TestReset(t *testing.T) {
	cfg, srv, user := hookConfig(t)
	var closed pidSet
	cfg.BeforeClose = closed.add
	p := openPool(t, cfg)
	idle, held := acquire(t, p), acquire(t, p)
	idlePID, heldPID := pidOf(idle.Conn()), pidOf(held.Conn())
	idle.Release()
	p.Reset()
	eventually(t, "Reset closes the idle connection", func() bool { return closed.has(idlePID) && !backendAlive(t, srv, idlePID) })
	if closed.has(heldPID) || !backendAlive(t, srv, heldPID) {
		t.Fatal("Reset closed a borrowed connection")
	}
	if _, err := held.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatalf("the borrowed connection broke: %v", err)
	}
	held.Release()
	eventually(t, "the borrowed connection is closed on release", func() bool { return closed.has(heldPID) && p.Stat().TotalConns() == 0 })
	c := acquire(t, p)
	defer c.Release()
	if pid := pidOf(c.Conn()); pid == idlePID || pid == heldPID {
		t.Fatal("a connection opened before Reset was handed out")
	}
	if n := srv.Backends(t, user); n != 1 {
		t.Fatalf("%d backends after Reset and one checkout, want 1", n)
	}
}

// AcquireAllIdle checks out every idle connection, less those PrepareConn
// rejects, and leaves none idle.
func TestAcquireAllIdle(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	var reject atomic.Uint32
	cfg.PrepareConn = func(_ context.Context, c *pgx.Conn) (bool, error) { return pidOf(c) != reject.Load(), nil }
	p := openPool(t, cfg)
	var pids []uint32
	var held []*pgxadapter.Conn
	for range 3 {
		c := acquire(t, p)
		pids = append(pids, pidOf(c.Conn()))
		held = append(held, c)
	}
	for _, c := range held {
		c.Release()
	}
	reject.Store(pids[0])
	conns := p.AcquireAllIdle(context.Background())
	var got []uint32
	for _, c := range conns {
		got = append(got, pidOf(c.Conn()))
	}
	slices.Sort(got)
	want := slices.Clone(pids[1:])
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("AcquireAllIdle returned %v, want %v (all idle but the rejected %d)", got, want, pids[0])
	}
	// The rejected one leaves puddle's count when its close begins.
	eventually(t, "none idle, two acquired", func() bool {
		st := p.Stat()
		return st.IdleConns() == 0 && st.AcquiredConns() == 2
	})
	for _, c := range conns {
		c.Release()
	}
	if st := p.Stat(); st.IdleConns() != 2 {
		t.Fatalf("%d idle after release, want 2", st.IdleConns())
	}
}

// Hijack takes the connection out of the pool: the pool no longer counts
// or closes it, and the caller owns it.
func TestHijack(t *testing.T) {
	cfg, srv, _ := hookConfig(t)
	var closed pidSet
	cfg.BeforeClose = closed.add
	p := openPool(t, cfg)
	c := acquire(t, p)
	conn := c.Hijack()
	if st := p.Stat(); st.TotalConns() != 0 || st.AcquiredConns() != 0 {
		t.Fatalf("the pool still counts the hijacked connection: total %d, acquired %d", st.TotalConns(), st.AcquiredConns())
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a second Hijack did not panic")
			}
		}()
		c.Hijack()
	}()
	c.Release() // does nothing
	p.Close()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("the hijacked connection broke when the pool closed: %v", err)
	}
	if closed.has(pidOf(conn)) {
		t.Fatal("BeforeClose ran for the hijacked connection")
	}
	pid := pidOf(conn)
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the caller closes the hijacked connection", func() bool { return !backendAlive(t, srv, pid) })
}

// With budget slots on, dials run one at a time (the pass), and a dial
// that finds the pass on a connection that found every slot held fails
// without opening anything: BeforeConnect runs once for each connection
// opened, not for each caller that waited for the pass in vain, so a hook
// that fetches a credential fetches one per dial. Two pools of one
// service share 7 slots and each would borrow up to 5.
func TestBeforeConnectOncePerDialWithSlots(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	cfg.MaxConns = 0
	cfg.Pool.Budget, cfg.Pool.MaxInstances = 10, 2
	cfg.Pool.BudgetSlots = runpool.BudgetSlotsAdvisory
	var before, after atomic.Int32
	cfg.BeforeConnect = func(context.Context, *pgx.ConnConfig) error { before.Add(1); return nil }
	cfg.AfterConnect = func(context.Context, *pgx.Conn) error { after.Add(1); return nil }
	pools := []*pgxadapter.Pool{openPool(t, cfg), openPool(t, cfg.Copy())}
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, p := range pools {
		for range 16 {
			wg.Go(func() {
				for range 3 {
					if _, err := p.Exec(ctx, "SELECT pg_sleep(0.02)"); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	wg.Wait()
	if b, a := before.Load(), after.Load(); b != a || a < 2 {
		t.Fatalf("BeforeConnect ran %d times for %d connections opened", b, a)
	}
}
