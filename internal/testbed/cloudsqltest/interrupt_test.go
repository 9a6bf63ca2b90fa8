package cloudsqltest_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/internal/testbed/cloudsqltest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

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
	v := &adaptertest.Verdicts{}
	old := slog.Default()
	slog.SetDefault(slog.New(v))
	t.Cleanup(func() { slog.SetDefault(old) })
	ctx := ctxFor(t, 60*time.Second)
	p, err := pgxadapter.NewFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n := adaptertest.ProbesAfterACutQuery(t, ctx, p, v); n != 0 {
		t.Errorf("%d idle connections probed after a cancelled query through the Cloud SQL connector, want none", n)
	}
	adaptertest.AwaitNoActiveQuery(t, func() int64 {
		return srv.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep%'", user)
	})
}
