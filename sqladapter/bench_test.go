package sqladapter_test

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for the baseline
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/pgtest"
	"github.com/runpool/runpool/sqladapter"
)

// BenchmarkSQLSelect1 runs SELECT 1 from parallel goroutines through
// database/sql: on runpool (sqladapter, defaults) and on pgx's stdlib
// driver with database/sql's default pool. Compare the two with benchstat.
func BenchmarkSQLSelect1(b *testing.B) {
	srv := pgtest.Shared(b)
	open := map[string]func() *sql.DB{
		"sqladapter": func() *sql.DB {
			sc, err := sqladapter.ParseConfig(srv.URL())
			if err != nil {
				b.Fatal(err)
			}
			sc.Pool = runpool.Config{Logger: discardLogger}
			db, err := sqladapter.Open(context.Background(), sc)
			if err != nil {
				b.Fatal(err)
			}
			return db
		},
		"stdlib": func() *sql.DB {
			db, err := sql.Open("pgx", srv.URL())
			if err != nil {
				b.Fatal(err)
			}
			return db
		},
	}
	for _, name := range []string{"sqladapter", "stdlib"} {
		b.Run(name, func(b *testing.B) {
			db := open[name]()
			defer db.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var n int
				for pb.Next() {
					if err := db.QueryRowContext(ctx, "select 1").Scan(&n); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
