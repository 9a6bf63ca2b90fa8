package conformance

import (
	"context"
	"testing"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgbouncertest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

// BenchmarkPoolerMode measures what the pooler mode costs per query: the
// same parameterised query with pgx's default named statements and with
// the mode's describe-cached execution, straight to the server, and with
// the mode through PgBouncer (transaction mode) for scale; for a query
// the server plans in no time and for a join whose plan a named statement
// keeps. Compare the variants of one run with benchstat.
func BenchmarkPoolerMode(b *testing.B) {
	srv := pgtest.Shared(b)
	user := srv.CreateRole(b, -1)
	bouncer := pgbouncertest.Start(b, pgbouncertest.Options{Target: srv.Addr(), Users: []string{user}})
	for _, v := range []struct {
		name, dsn string
		pooler    string
	}{
		{"server/named-statements", srv.URLFor(user, "pw", user), runpool.PoolerNone},
		{"server/pooler-mode", srv.URLFor(user, "pw", user), runpool.PoolerPgBouncer},
		{"pgbouncer/pooler-mode", bouncer.URLFor(user, "pw", user), runpool.PoolerPgBouncer},
	} {
		for _, q := range poolerBenchQueries {
			b.Run(v.name+"/"+q.name, func(b *testing.B) {
				ctx := context.Background()
				pc, err := pgxadapter.ParseConfig(v.dsn)
				if err != nil {
					b.Fatal(err)
				}
				pc.Pool = runpool.Config{Pooler: v.pooler, MaxConns: 1, Logger: quiet}
				p, err := pgxadapter.NewWithConfig(ctx, pc)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				var out string
				b.ResetTimer()
				for b.Loop() {
					if err := p.QueryRow(ctx, q.sql, 1259).Scan(&out); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// poolerBenchQueries: one the server plans in no time, and a catalog join
// whose planning a named statement saves (its plan is cached).
var poolerBenchQueries = []struct{ name, sql string }{
	{"trivial", "SELECT $1::int::text"},
	{"join", "SELECT n.nspname || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1"},
}
