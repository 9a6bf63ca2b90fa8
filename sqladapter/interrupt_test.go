package sqladapter_test

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/sqladapter"
)

// Guards against: a query its caller's deadline cut short through
// database/sql condemning the pool's idle connections to a probe each on
// a healthy path.
func TestCancelledQueryCostsNoProbes(t *testing.T) {
	v := &adaptertest.Verdicts{}
	db, _, _ := openDB(t, runpool.Config{MaxConns: 3, ProbeAfterIdle: time.Minute, Logger: slog.New(v)})
	ctx := ctxT(t, 30*time.Second)
	n := adaptertest.ProbesAfterACut(t, ctx, adaptertest.CutPool{
		Acquire: func(ctx context.Context) (adaptertest.Checkout, error) {
			c, err := db.Conn(ctx)
			if err != nil {
				return nil, err
			}
			return sqlCheckout{c}, nil
		},
		Exec: func(ctx context.Context, query string) error {
			_, err := db.ExecContext(ctx, query)
			return err
		},
		Probes: func() int64 { return sqladapter.Stat(db).ProbeCount() },
	}, v)
	if n != 0 {
		t.Errorf("%d idle connections probed after a cancelled query on a healthy path, want none", n)
	}
}

// sqlCheckout is a database/sql connection as adaptertest uses one.
type sqlCheckout struct{ c *sql.Conn }

func (s sqlCheckout) Ping(ctx context.Context) error { return s.c.PingContext(ctx) }
func (s sqlCheckout) Release()                       { _ = s.c.Close() }
