package lambdadrain_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/lambdadrain"
	"github.com/runpool/runpool/pgxadapter"
	"github.com/runpool/runpool/sqladapter"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// SIGTERM comes to an environment whose path forgot the pool's flow while
// it idled: the drain's ping gives the stale connection up and dials a
// live one, through which the drain ends the stale one's session; no
// backend of the role is left. Both adapters.
func TestSIGTERMEndsSessionsBehindAForgottenFlow(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, a := range []struct {
		name string
		open func(t *testing.T, url string) (runpool.Drainer, func(context.Context) error)
	}{
		{"pgx", func(t *testing.T, url string) (runpool.Drainer, func(context.Context) error) {
			p, err := pgxadapter.New(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			return p, func(ctx context.Context) error { _, err := p.Exec(ctx, "SELECT 1"); return err }
		}},
		{"database/sql", func(t *testing.T, url string) (runpool.Drainer, func(context.Context) error) {
			cfg, err := sqladapter.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			db, err := sqladapter.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return lambdadrain.DB(db), func(ctx context.Context) error { _, err := db.ExecContext(ctx, "SELECT 1"); return err }
		}},
	} {
		t.Run(a.name, func(t *testing.T) {
			user := srv.CreateRole(t, -1)
			nat, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr(), Mode: faultproxy.Blackhole})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nat.Close() })
			pool, query := a.open(t, fmt.Sprintf("postgres://%s:pw@%s/%s?sslmode=disable", user, nat.Addr(), user))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := query(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1200 * time.Millisecond) // past ProbeAfterIdle: the pool no longer trusts it blindly
			nat.Expire()
			if n := srv.Backends(t, user); n != 1 {
				t.Fatalf("%d backends before SIGTERM, want 1", n)
			}
			code, took := sigterm(t, 400*time.Millisecond, pool)
			left := srv.Backends(t, user)
			for end := time.Now().Add(time.Second); left > 0 && time.Now().Before(end); left = srv.Backends(t, user) {
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("drain after SIGTERM %v, exit %d, backends left %d", took.Round(time.Millisecond), code, left)
			if code != 0 || took > 400*time.Millisecond || left != 0 {
				t.Fatalf("exit %d after %v with %d backends left; want 0 within 400ms, none left", code, took, left)
			}
		})
	}
}
