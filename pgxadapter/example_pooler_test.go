package pgxadapter_test

import (
	"context"
	"log"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/pgxadapter"
)

// Behind PgBouncer in transaction mode (or any transaction-mode pooler):
// statements are sent so that any server connection can run them, no
// session setting is sent, and the budget is PgBouncer's client limit.
// From the environment: RUNPOOL_POOLER=pgbouncer RUNPOOL_BUDGET=440
// RUNPOOL_MAX_INSTANCES=50.
func ExampleParseConfig_pgbouncer() {
	cfg, err := pgxadapter.ParseConfig("postgres://app@pgbouncer.internal:6432/app")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Pool.Pooler = runpool.PoolerPgBouncer
	cfg.Pool.Budget = 440 // PgBouncer's max_client_conn share for this service
	cfg.Pool.MaxInstances = 50
	pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	// Session state would stay on a server connection other clients use:
	// settings go inside the transaction that needs them.
	tx, err := pool.Begin(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(context.Background(), "SET LOCAL statement_timeout = '2s'"); err != nil {
		log.Fatal(err)
	}
	// ... the transaction's statements ...
	if err := tx.Commit(context.Background()); err != nil {
		log.Fatal(err)
	}
}
