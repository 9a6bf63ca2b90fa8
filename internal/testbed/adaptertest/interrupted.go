package adaptertest

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

// Verdicts is a slog.Handler that records the pool's verdicts on
// connections whose statement the caller's context cut short.
type Verdicts struct {
	mu   sync.Mutex
	msgs []string
}

// Enabled implements slog.Handler: every level.
func (v *Verdicts) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs implements slog.Handler.
func (v *Verdicts) WithAttrs([]slog.Attr) slog.Handler { return v }

// WithGroup implements slog.Handler.
func (v *Verdicts) WithGroup(string) slog.Handler { return v }

// Handle implements slog.Handler, keeping the verdicts' messages.
func (v *Verdicts) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "runpool: interrupted connection") {
		v.mu.Lock()
		m := r.Message
		r.Attrs(func(a slog.Attr) bool { // answered_after and grace: how close the call was
			m += " " + a.String()
			return true
		})
		v.msgs = append(v.msgs, m)
		v.mu.Unlock()
	}
	return nil
}

// List returns the verdicts so far.
func (v *Verdicts) List() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.msgs...)
}

// A Checkout is a connection checked out of a pool under test, as
// ProbesAfterACut uses it.
type Checkout interface {
	Ping(context.Context) error
	Release()
}

// CutPool is what ProbesAfterACut needs of a pool, whichever adapter
// serves it: a checkout, a query through the pool, its probe count.
type CutPool struct {
	Acquire func(context.Context) (Checkout, error)
	Exec    func(ctx context.Context, sql string) error
	Probes  func() int64
}

// ProbesAfterACutQuery is ProbesAfterACut on a pgx pool.
func ProbesAfterACutQuery(t *testing.T, ctx context.Context, p *pgxadapter.Pool, v *Verdicts) int64 {
	t.Helper()
	return ProbesAfterACut(t, ctx, CutPool{
		Acquire: func(ctx context.Context) (Checkout, error) {
			c, err := p.Acquire(ctx)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		Exec: func(ctx context.Context, sql string) error {
			_, err := p.Exec(ctx, sql)
			return err
		},
		Probes: func() int64 { return p.Stat().ProbeCount() },
	}, v)
}

// ProbesAfterACut opens three connections in p and returns them, cuts a
// 30 s query short with a 300 ms deadline, waits for the pool's verdict
// (logged to v), checks two connections out and pings on them, and
// returns how many checkout probes that cost. On a healthy path the
// answer is 0: the cut alone is no sign of trouble.
//
// The pool gives the server a grace, estimated from its own dials, to
// answer the cancel. On a machine loaded enough that the answer comes
// later (behind a pooler or proxy the cancel also costs a dial of the
// server's, which the pool never sees), the verdict is "no answer",
// rightly for what the pool saw, and probes follow. The cut is then made
// again, up to three times, so that the count is that of a cut the
// server answered within the grace.
func ProbesAfterACut(t *testing.T, ctx context.Context, p CutPool, v *Verdicts) int64 {
	t.Helper()
	for attempt := 1; ; attempt++ {
		seen := len(v.List())
		var held []Checkout
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
		before := p.Probes()
		qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := p.Exec(qctx, "SELECT pg_sleep(30)")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("slow query: %v, want the caller's deadline", err)
		}
		// A pool that judges at once logs no verdict.
		for end := time.Now().Add(10 * time.Second); len(v.List()) == seen && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		verdicts := v.List()[seen:]
		t.Logf("verdicts: %q", verdicts)
		if attempt < 3 && len(verdicts) > 0 && strings.Contains(verdicts[0], "got no answer") {
			continue
		}
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
		return p.Probes() - before
	}
}

// AwaitNoActiveQuery waits up to 10 s until count reports no active
// query, and fails the test if it never does: the server must stop a
// query its caller cut short.
func AwaitNoActiveQuery(t *testing.T, count func() int64) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if count() == 0 {
			return
		}
		if time.Now().After(end) {
			t.Fatal("the server still runs the cancelled query")
		}
	}
}
