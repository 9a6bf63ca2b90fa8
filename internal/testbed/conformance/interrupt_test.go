package conformance

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/pgxadapter"
)

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
	v := &adaptertest.Verdicts{}
	pc.Pool = poolerCfg
	pc.Pool.MaxConns, pc.Pool.ProbeAfterIdle, pc.Pool.Logger = 3, time.Minute, slog.New(v)
	p, err := pgxadapter.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatalf("open through pgbouncer: %v\n%s", err, b.Log())
	}
	defer p.Close()
	if n := adaptertest.ProbesAfterACutQuery(t, ctx, p, v); n != 0 {
		t.Errorf("%d idle connections probed after a cancelled query behind PgBouncer, want none", n)
	}
	adaptertest.AwaitNoActiveQuery(t, func() int64 {
		return srv.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%pg_sleep(30)%' AND state = 'active'", user)
	})
}
