package pgxadapter_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/runpool/runpool/pgxadapter"
)

// Everything from the environment: DATABASE_URL (or PG*) and RUNPOOL_*.
func ExampleNewFromEnv() {
	ctx := context.Background()
	pool, err := pgxadapter.NewFromEnv(ctx)
	if err != nil {
		log.Fatal(err) // names the bad variable; never shows the password
	}
	defer pool.Close()

	var now time.Time
	if err := pool.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		log.Fatal(err)
	}
	fmt.Println(now)
}

// Settings in code: parse the connection string, then set runpool's fields.
func ExampleParseConfig() {
	cfg, err := pgxadapter.ParseConfig("postgres://app@db.internal/app")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Pool.Budget = 90       // connections for the whole service
	cfg.Pool.MaxInstances = 10 // the platform's max instance count
	cfg.PingTimeout = 200 * time.Millisecond
	pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
}

// Borrow one connection for statements that must share a session, such
// as a session-level advisory lock and its unlock.
func ExamplePool_AcquireFunc() {
	ctx := context.Background()
	pool, err := pgxadapter.NewFromEnv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	err = pool.AcquireFunc(ctx, func(c *pgxadapter.Conn) error {
		if _, err := c.Exec(ctx, "SELECT pg_advisory_lock(42)"); err != nil {
			return err
		}
		defer c.Exec(ctx, "SELECT pg_advisory_unlock(42)")
		_, err := c.Exec(ctx, "UPDATE counters SET n = n + 1 WHERE id = 1")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}
