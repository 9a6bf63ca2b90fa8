package sqladapter_test

import (
	"context"
	"log"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/sqladapter"
)

// Behind PgBouncer in transaction mode: a sql.Stmt is described, not
// prepared by name on the server, so it runs on whichever server
// connection PgBouncer picks. From the environment: RUNPOOL_POOLER=pgbouncer.
func ExampleOpen_pgbouncer() {
	ctx := context.Background()
	cfg, err := sqladapter.ParseConfig("postgres://app@pgbouncer.internal:6432/app")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Pool.Pooler = runpool.PoolerPgBouncer
	db, err := sqladapter.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	stmt, err := db.PrepareContext(ctx, "SELECT name FROM users WHERE id = $1")
	if err != nil {
		log.Fatal(err)
	}
	defer stmt.Close()
	var name string
	if err := stmt.QueryRowContext(ctx, 42).Scan(&name); err != nil {
		log.Fatal(err)
	}
}
