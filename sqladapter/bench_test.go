package sqladapter_test

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for the baseline
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/sqladapter"
)

// BenchmarkSQLSelect1 runs SELECT 1 from parallel goroutines through
// database/sql: on runpool (sqladapter, defaults) and on pgx's stdlib
// driver with database/sql's default pool. Compare the two with benchstat.
func BenchmarkSQLSelect1(b *testing.B) {
	for _, name := range []string{"sqladapter", "stdlib"} {
		b.Run(name, func(b *testing.B) {
			db := openBenchDB(b, name)
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

// BenchmarkSQLConn isolates the checkout: sql.DB.Conn and Close with no
// round trip, so the pool's own cost shows without the server's noise.
func BenchmarkSQLConn(b *testing.B) {
	for _, name := range []string{"sqladapter", "stdlib"} {
		b.Run(name, func(b *testing.B) {
			db := openBenchDB(b, name)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c, err := db.Conn(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					_ = c.Close()
				}
			})
		})
	}
}

// openBenchDB opens a DB on the shared server: "sqladapter" with runpool's
// defaults, "stdlib" with pgx's driver and database/sql's default pool.
func openBenchDB(b *testing.B, name string) *sql.DB {
	b.Helper()
	url := pgtest.Shared(b).URL()
	var db *sql.DB
	var err error
	switch name {
	case "sqladapter":
		var sc *sqladapter.Config
		if sc, err = sqladapter.ParseConfig(url); err == nil {
			sc.Pool = runpool.Config{Logger: discardLogger}
			db, err = sqladapter.Open(context.Background(), sc)
		}
	case "stdlib":
		db, err = sql.Open("pgx", url)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// BenchmarkSQLStmt runs a prepared statement (sql.Stmt) from parallel
// goroutines: database/sql prepares it again on each connection it lands
// on, so this shows what the prepare costs per checkout.
func BenchmarkSQLStmt(b *testing.B) {
	for _, name := range []string{"sqladapter", "stdlib"} {
		b.Run(name, func(b *testing.B) {
			db := openBenchDB(b, name)
			ctx := context.Background()
			stmt, err := db.PrepareContext(ctx, "select $1::int + 1")
			if err != nil {
				b.Fatal(err)
			}
			defer stmt.Close()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var n int
				for pb.Next() {
					if err := stmt.QueryRowContext(ctx, 1).Scan(&n); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
