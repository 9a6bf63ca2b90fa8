package sqladapter_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/sqladapter"
)

// A server reached by a network name without sslmode draws one warning
// at start that names the fix, never the password; before, pgx's
// fallback sent the password in the clear without a word.
func TestPlaintextOverANetworkIsWarnedOnce(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	const password = "Secr3t-Pa55"
	srv.Exec(t, "ALTER ROLE "+user+" PASSWORD '"+password+"'")
	t.Setenv("PGSSLMODE", "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg, err := sqladapter.ParseConfig(fmt.Sprintf("postgres://%s:%s@db.runpool.test:%d/%s", user, password, srv.Port, user))
	if err != nil {
		t.Fatal(err)
	}
	// The network name leads to the test server.
	cfg.ConnConfig.LookupFunc = func(context.Context, string) ([]string, error) { return []string{srv.Host}, nil }
	var logs lockedBuffer
	cfg.Pool.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.MaxConns = 4
	db, err := sqladapter.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := db.ExecContext(ctx, "SELECT pg_sleep(0.05)"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	out := logs.String()
	if n := strings.Count(out, "not protected by verified TLS"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "sslmode=verify-full") || !strings.Contains(out, "db.runpool.test") {
		t.Errorf("the warning lacks the fix or the server: %s", out)
	}
	if strings.Contains(out, password) {
		t.Errorf("the warning shows the password: %s", out)
	}
}

// lockedBuffer is a bytes.Buffer a logger may write while a test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
