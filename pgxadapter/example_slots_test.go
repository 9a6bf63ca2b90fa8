package pgxadapter_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/pgxadapter"
)

// One budget for the whole service, enforced by the database: every
// server connection beyond an instance's one holds one of the budget's
// advisory locks, so the service never has more than 40 backends
// however its instances share them, and busy instances borrow what idle
// ones leave. From the environment: RUNPOOL_BUDGET=40
// RUNPOOL_MAX_INSTANCES=20 RUNPOOL_BUDGET_SLOTS=advisory. A request that
// found the whole budget in use for as long as its deadline allowed
// fails with an error for which errors.Is(err, runpool.ErrNoFreeSlot)
// holds (SQLSTATE 53300).
func ExampleParseConfig_budgetSlots() {
	cfg, err := pgxadapter.ParseConfig("postgres://app@db.internal/app")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Pool.Budget = 40 // this service's share of max_connections
	cfg.Pool.MaxInstances = 20
	cfg.Pool.BudgetSlots = runpool.BudgetSlotsAdvisory
	pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = pool.Exec(ctx, "UPDATE jobs SET state = 'done' WHERE id = $1", 42)
	if errors.Is(err, runpool.ErrNoFreeSlot) {
		// The service holds its whole budget: shed the request (503)
		// rather than retry at once.
		log.Print("busy: ", err)
	}
}
