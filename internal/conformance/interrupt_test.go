package conformance

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

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

// Guards against: a query cut short by its caller's deadline behind
// PgBouncer condemning the idle connections to a probe each, or leaving
// the server running it: the cancel request goes through PgBouncer, and
// PgBouncer's close after Terminate is the answer on the path.
func TestPgBouncerCancelledQueryCostsNoProbes(t *testing.T) {
	srv, b, user, dsn := behindBouncer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pc, err := pgxadapter.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	v := &verdicts{}
	pc.Pool = poolerCfg
	pc.Pool.MaxConns, pc.Pool.ProbeAfterIdle, pc.Pool.Logger = 3, time.Minute, slog.New(v)
	p, err := pgxadapter.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatalf("open through pgbouncer: %v\n%s", err, b.Log())
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
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = p.Exec(qctx, "SELECT pg_sleep(30)")
	qcancel()
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
		t.Errorf("%d idle connections probed after a cancelled query behind PgBouncer, want none", n)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := srv.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%pg_sleep(30)%' AND state = 'active'", user)
		if n == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the server still runs the cancelled query")
		}
	}
}
