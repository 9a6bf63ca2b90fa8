package pgbouncertest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/testbed/pgbouncertest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestPgBouncerTransactionMode checks that the bouncer serves queries and
// really pools by transaction: two sessions share one server connection.
func TestPgBouncerTransactionMode(t *testing.T) {
	pg := pgtest.Shared(t)
	user := pg.CreateRole(t, -1)
	b := pgbouncertest.Start(t, pgbouncertest.Options{Target: pg.Addr(), Users: []string{user}, PoolSize: 1})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pids [2]int32
	for i := range pids {
		cc, err := pgx.ParseConfig(b.URLFor(user, "pw", user))
		if err != nil {
			t.Fatal(err)
		}
		cc.DefaultQueryExecMode = pgx.QueryExecModeExec
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			t.Fatalf("connect through pgbouncer: %v\n%s", err, b.Log())
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if pids[0] != pids[1] {
		t.Errorf("two client sessions used backends %d and %d; with default_pool_size=1 in transaction mode they share one", pids[0], pids[1])
	}
	if got := pg.Backends(t, user); got != 1 {
		t.Errorf("server backends of %s: %d, want 1", user, got)
	}
	if rows := b.Admin(t, "SHOW POOLS"); len(rows) == 0 {
		t.Error("SHOW POOLS on the admin console returned no rows")
	}
}
