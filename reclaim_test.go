package runpool_test

import (
	"context"
	"testing"
	"time"

	"github.com/runpool/runpool"
)

// Guards against: runpool's own server settings ending a connection its
// caller holds (idle_session_timeout's FATAL 57P05 on a LISTEN loop).
// The pool's idle limit is short (500 ms), so the server-side limit the
// pool used to derive from it, 10.6 s, passes while a LISTEN connection
// waits; it must still receive the notification.
func TestHeldConnectionOutlivesTheServerIdleLimit(t *testing.T) {
	p, _, _ := openPool(t, runpool.Config{MaxConns: 2, MaxConnIdleTime: 500 * time.Millisecond, MaintainInterval: 50 * time.Millisecond})
	ctx := ctxT(t, 40*time.Second)
	held, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	if _, err := held.Exec(ctx, "LISTEN runpool_held"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(11 * time.Second) // past 500 ms + 2*50 ms + 10 s
	if _, err := p.Exec(ctx, "SELECT pg_notify('runpool_held', 'x')"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := held.Conn().WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("the held connection, idle 11 s: %v", err)
	}
	if n.Payload != "x" {
		t.Fatalf("notification %q, want x", n.Payload)
	}
}

// The opt-in still reaches the server: a session carries the configured
// idle_session_timeout, and none by default.
func TestServerIdleSessionTimeoutIsOptIn(t *testing.T) {
	ctx := ctxT(t, 20*time.Second)
	for _, c := range []struct {
		cfg  runpool.Config
		want string
	}{
		{runpool.Config{MaxConns: 1}, "0"},
		{runpool.Config{MaxConns: 1, ServerIdleSessionTimeout: 90 * time.Second}, "90s"},
	} {
		p, _, _ := openPool(t, c.cfg)
		var got string
		if err := p.QueryRow(ctx, "SHOW idle_session_timeout").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("ServerIdleSessionTimeout %v: the session's idle_session_timeout is %s, want %s", c.cfg.ServerIdleSessionTimeout, got, c.want)
		}
	}
}
