package cloudsqltest_test

import (
	"context"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/cloudsqltest"
	"github.com/runpool/runpool/internal/pgtest"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A pool opened from the environment alone (instance name, user,
// password, database) reaches PostgreSQL through cloudsqlconn: the
// stand-in issued a certificate and its TLS endpoint accepted it.
func TestCloudSQLFromEnv(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, a := range adapters {
		t.Run(a.name, func(t *testing.T) {
			user := srv.CreateRole(t, -1)
			inst := start(t, srv, cloudsqltest.Options{}, nil)
			cloudEnv(t, inst, user)
			d := openDB(t, a)
			ctx := ctxFor(t, 10*time.Second)
			if r := burst(d, 8); r.Failed > 0 {
				t.Fatalf("%d of 8 queries failed: %v", r.Failed, r.Errors[0])
			}
			n, err := d.QueryInt(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = current_user AND client_addr IS NOT NULL")
			if err != nil {
				t.Fatal(err)
			}
			if inst.CertsIssued() == 0 || inst.Handshakes() < int(n) || inst.Dialled(cloudsqltest.PublicIP) < int(n) {
				t.Fatalf("%d backends but %d certificates, %d handshakes, %d dials to the public IP: not through cloudsqlconn",
					n, inst.CertsIssued(), inst.Handshakes(), inst.Dialled(cloudsqltest.PublicIP))
			}
			t.Logf("%d backends, %d certificate(s), %d handshakes", n, inst.CertsIssued(), inst.Handshakes())
		})
	}
}
