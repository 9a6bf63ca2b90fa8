package runpool_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// acquireTimedOut acquires with a generous deadline of the caller's own
// and returns the error, which must be AcquireTimeout's and come after
// the timeout, well before the caller's deadline.
func acquireTimedOut(t *testing.T, acquire func(context.Context) error, timeout time.Duration) *runpool.AcquireTimeoutError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*timeout)
	defer cancel()
	start := time.Now()
	err := acquire(ctx)
	took := time.Since(start)
	var te *runpool.AcquireTimeoutError
	if !errors.Is(err, runpool.ErrAcquireTimeout) || !errors.As(err, &te) {
		t.Fatalf("acquire after %v: %v, want an AcquireTimeoutError", took.Round(time.Millisecond), err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v is not context.DeadlineExceeded", err)
	}
	if took < timeout || took > 10*timeout {
		t.Errorf("acquire failed after %v with AcquireTimeout %v", took.Round(time.Millisecond), timeout)
	}
	if msg := err.Error(); !strings.Contains(msg, "AcquireTimeout") || !strings.Contains(msg, "RUNPOOL_ACQUIRE_TIMEOUT") || !strings.Contains(msg, timeout.String()) {
		t.Errorf("error %q does not name the setting and its value", msg)
	}
	return te
}

// AcquireTimeout bounds the wait for a connection of a full pool, though
// the caller's own deadline is far away, and the error says that the
// wait was for a connection in use.
func TestAcquireTimeoutBoundsTheWaitForAConnectionInUse(t *testing.T) {
	const timeout = 200 * time.Millisecond
	p, _, _ := openPool(t, runpool.Config{MaxConns: 1, AcquireTimeout: timeout})
	ctx := ctxT(t, 20*time.Second)
	held := acquireAll(t, ctx, p.Acquire, 1)[0]
	defer held.Release()
	te := acquireTimedOut(t, func(ctx context.Context) error { _, err := p.Acquire(ctx); return err }, timeout)
	if !strings.Contains(te.Error(), "a connection in use") {
		t.Errorf("error %q does not say it waited for a connection in use", te)
	}
}

// The same for a caller waiting for its turn to dial (MaxConcurrentDials
// 1, another caller's dial slow).
func TestAcquireTimeoutBoundsTheWaitForADialTurn(t *testing.T) {
	const timeout = 200 * time.Millisecond
	var slow atomic.Bool
	p, _, _ := openPool(t, runpool.Config{MaxConns: 4, MaxConcurrentDials: 1, AcquireTimeout: timeout}, afterConnect(func(ctx context.Context, _ *pgx.Conn) error {
		if slow.Load() {
			time.Sleep(2 * time.Second)
		}
		return nil
	}))
	ctx := ctxT(t, 20*time.Second)
	held := acquireAll(t, ctx, p.Acquire, 1)[0]
	defer held.Release()
	slow.Store(true)
	dialer := acquireInBackground(ctx, p.Acquire) // its own AcquireTimeout ends its wait; the dial goes on
	waitFor(t, 5*time.Second, "the first caller dialing", func() bool { return p.Stat().ConstructingConns() == 1 })
	te := acquireTimedOut(t, func(ctx context.Context) error { _, err := p.Acquire(ctx); return err }, timeout)
	if !strings.Contains(te.Error(), "a turn to dial") {
		t.Errorf("error %q does not say it waited for a turn to dial", te)
	}
	<-dialer
}

// AcquireTimeout bounds only the wait: a query that runs longer than it
// on a connection acquired at once completes.
func TestAcquireTimeoutDoesNotCutTheQuery(t *testing.T) {
	const timeout = 100 * time.Millisecond
	// The MinConns floor opens the connection beforehand: a dial on a busy
	// machine may take longer than the timeout, which would rightly end
	// the wait.
	p, _, _ := openPool(t, runpool.Config{MaxConns: 2, MinConns: 1, AcquireTimeout: timeout})
	waitFor(t, 10*time.Second, "the MinConns floor never opened", func() bool { return p.Stat().IdleConns() == 1 })
	ctx := ctxT(t, 20*time.Second)
	if _, err := p.Exec(ctx, "SELECT pg_sleep(0.5)"); err != nil {
		t.Fatalf("a 500 ms query with AcquireTimeout %v: %v", timeout, err)
	}
	c := acquireAll(t, ctx, p.Acquire, 1)[0]
	defer c.Release()
	if _, err := c.Exec(ctx, "SELECT pg_sleep(0.5)"); err != nil {
		t.Fatalf("a 500 ms query on an acquired connection with AcquireTimeout %v: %v", timeout, err)
	}
}

// RUNPOOL_ACQUIRE_TIMEOUT sets AcquireTimeout, within its range.
func TestAcquireTimeoutFromEnv(t *testing.T) {
	t.Setenv("RUNPOOL_ACQUIRE_TIMEOUT", "750ms")
	cfg, err := runpool.ConfigFromEnv(runpool.Config{})
	if err != nil || cfg.AcquireTimeout != 750*time.Millisecond {
		t.Fatalf("AcquireTimeout %v, err %v; want 750ms", cfg.AcquireTimeout, err)
	}
	t.Setenv("RUNPOOL_ACQUIRE_TIMEOUT", "2h")
	if _, err := runpool.ConfigFromEnv(runpool.Config{}); err == nil || !strings.Contains(err.Error(), "RUNPOOL_ACQUIRE_TIMEOUT") {
		t.Fatalf("RUNPOOL_ACQUIRE_TIMEOUT=2h: %v, want an error naming the variable", err)
	}
}
