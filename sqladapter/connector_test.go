package sqladapter_test

import (
	"testing"

	"github.com/runpool/runpool/sqladapter"
)

// NewConnector opens nothing, yet a budget set in the environment is
// divided among the instances as Open divides it: a pool sized without
// it would let N instances overrun the server.
func TestNewConnectorDividesTheBudget(t *testing.T) {
	t.Setenv("RUNPOOL_BUDGET", "30")
	t.Setenv("RUNPOOL_MAX_INSTANCES", "4")
	t.Setenv("RUNPOOL_PLATFORM", "none")
	cfg, err := sqladapter.ParseConfig("postgres://app@127.0.0.1:1/app")
	if err != nil {
		t.Fatal(err)
	}
	c, err := sqladapter.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sqladapter.OpenDB(c)
	defer db.Close()
	// 30 divided among 4 instances with a 10% surge margin: 5 instances, 6 each.
	if got := c.Stat().MaxConns(); got != 6 {
		t.Fatalf("MaxConns %d, want 6: the budget of 30 among 4 instances", got)
	}
}
