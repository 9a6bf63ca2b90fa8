package cloudsqltest_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/cloudsqltest"
	"github.com/runpool/runpool/internal/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

// verdicts records the pool's verdicts on interrupted connections.
type verdicts struct {
	mu   sync.Mutex
	msgs []string
}

func (v *verdicts) Enabled(context.Context, slog.Level) bool { return true }
func (v *verdicts) WithAttrs([]slog.Attr) slog.Handler       { return v }
func (v *verdicts) WithGroup(string) slog.Handler            { return v }
func (v *verdicts) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "runpool: interrupted connection") {
		v.mu.Lock()
		v.msgs = append(v.msgs, r.Message)
		v.mu.Unlock()
	}
	return nil
}

func (v *verdicts) list() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.msgs...)
}

// Guards against: a query cut short by its caller's deadline through the
// Cloud SQL connector condemning the idle connections to a probe each, or
// leaving the server running it: the cancel request takes a dial of its
// own through the connector, and the answer comes beneath its TLS.
func TestCloudSQLCancelledQueryCostsNoProbes(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	inst := start(t, srv, cloudsqltest.Options{}, nil)
	cloudEnv(t, inst, user)
	t.Setenv("RUNPOOL_MAX_CONNS", "3")
	t.Setenv("RUNPOOL_PROBE_AFTER_IDLE", "1m")
	v := &verdicts{}
	old := slog.Default()
	slog.SetDefault(slog.New(v))
	t.Cleanup(func() { slog.SetDefault(old) })
	ctx := ctxFor(t, 60*time.Second)
	p, err := pgxadapter.NewFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var held []*pgxadapter.Conn
	for range 3 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for _, c := range held {
		c.Release()
	}

	before := p.Stat().ProbeCount()
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = p.Exec(qctx, "SELECT pg_sleep(30)")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow query: %v, want the caller's deadline", err)
	}
	for end := time.Now().Add(10 * time.Second); len(v.list()) == 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("verdicts: %q", v.list())
	for range 2 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.Stat().ProbeCount() - before; n != 0 {
		t.Errorf("%d idle connections probed after a cancelled query through the Cloud SQL connector, want none", n)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := srv.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep%'", user)
		if n == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the server still runs the cancelled query")
		}
	}
}
