package runpool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// The connection budget (F2, F6).
//
// Every instance has its own pool, so N instances times the per-instance
// maximum must fit the server. The budget is the number of server
// connections the whole service may use (RUNPOOL_BUDGET); each instance
// takes an equal share:
//
//	per instance = floor((budget - reserve) / ceil(max_instances * 1.1))
//
// at least 1. The 10% surge margin is there because platforms exceed their
// max instance count for a while during surges and rollouts (Cloud Run
// says so). Worked example: budget 100, reserve 5, 10 instances:
// (100-5)/ceil(11) = 8 connections per instance, 80 in all at the
// maximum, 88 during an 11-instance surge, 5 left for migrations.
//
// With no budget configured, the budget is what the server allows this
// role at start: max_connections less superuser_reserved_connections and
// (PostgreSQL 16+) reserved_connections, or the role's or the database's
// CONNECTION LIMIT when smaller. A server that is full answers a new
// connection with SQLSTATE 53300; the pool treats that as back-pressure:
// the caller waits a jittered, growing pause (cut short when one of the
// pool's connections comes back, which then serves it) and tries again,
// within its own deadline; it sees the server's error (wrapped in
// *AcquireError) only when that deadline passes. This also fixes the case
// where a new connection's 53300 failed a caller that an existing
// connection could have served a moment later.

// Sharing. Where the server itself enforces the budget (the role's or the
// database's CONNECTION LIMIT, or max_connections, is the budget), an
// instance may borrow beyond its fair share while the others are idle:
// the server's 53300 keeps the total within the budget, and the
// back-pressure above turns it into waiting, not failing. Its maximum
// becomes half the budget, and every connection opened beyond the fair
// share is on a lease: closed on release once older than borrowLease, and
// closed by the maintainer once idle for borrowIdle. So a busy instance
// gives borrowed slots back within seconds, and an instance that wakes up
// finds room: at worst it waits a lease, backing off, while the busy one's
// next dials meet 53300 in turn (additive growth while dials succeed,
// shrinking as leases end and 53300 answers). A pool whose own dial met
// 53300 stops borrowing for a lease's time and closes its borrowed
// connections as they come back (contended, pool.go): otherwise, with
// every instance busy, its callers would take each slot back the moment
// it freed, while the instances below their share back off between
// dials. Where the server would allow more than the budget, nothing
// enforces it but the division, so an instance never borrows and the
// total never exceeds the budget.
const (
	borrowLease = 2 * time.Second
	borrowIdle  = time.Second
)

// ServerLimits is what the server allows, read at start.
type ServerLimits struct {
	MaxConnections    int  // max_connections
	SuperuserReserved int  // superuser_reserved_connections
	Reserved          int  // reserved_connections (PostgreSQL 16+; else 0)
	RoleLimit         int  // the role's CONNECTION LIMIT, -1 for none
	DatabaseLimit     int  // the database's CONNECTION LIMIT, -1 for none
	Superuser         bool // superusers may use the reserved slots
}

// Allowance is how many connections the role may hold at once: the
// smallest of the server-wide, role and database limits.
func (s ServerLimits) Allowance() int {
	n := s.MaxConnections
	if !s.Superuser {
		n -= s.SuperuserReserved + s.Reserved
	}
	if s.RoleLimit >= 0 && s.RoleLimit < n {
		n = s.RoleLimit
	}
	if s.DatabaseLimit >= 0 && s.DatabaseLimit < n {
		n = s.DatabaseLimit
	}
	return max(n, 0)
}

func (s ServerLimits) String() string {
	lim := func(n int) string {
		if n < 0 {
			return "none"
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("max_connections %d - superuser_reserved_connections %d - reserved_connections %d; role limit %s; database limit %s",
		s.MaxConnections, s.SuperuserReserved, s.Reserved, lim(s.RoleLimit), lim(s.DatabaseLimit))
}

// LimitReader is an optional interface for a Connector: it reads the
// server's limits on an open connection, for the budget.
type LimitReader[C any] interface {
	ServerLimits(ctx context.Context, c C) (ServerLimits, error)
}

// budgetShare is what the budget yields for one instance.
type budgetShare struct {
	instances   int   // MaxInstances with the surge margin
	perInstance int32 // this instance's share of the budget
}

// surgeMargin is how far platforms overshoot max instances during surges
// and rollouts, as a factor.
const surgeMargin = 1.1

// withSurge is the instance count the division allows for: maxInstances
// (1 when unset) with the surge margin.
func withSurge(maxInstances int) int {
	return int(math.Ceil(float64(max(maxInstances, 1))*surgeMargin - 1e-9))
}

// deriveLimits divides a budget among instances (see the rule above).
func deriveLimits(budget, reserve, maxInstances int) (budgetShare, error) {
	maxInstances = max(maxInstances, 1)
	n := withSurge(maxInstances)
	per := (budget - reserve) / n
	if per < 1 {
		return budgetShare{}, &ConfigError{Setting: "RUNPOOL_BUDGET", Value: fmt.Sprint(budget), Problem: fmt.Sprintf(
			"cannot give each instance a connection: RUNPOOL_MAX_INSTANCES=%d with the 10%% surge margin is %d instances, "+
				"which need at least %d connections plus RUNPOOL_RESERVE=%d; raise the budget, lower the instance count, "+
				"or put a transaction-mode pooler in front (PgBouncer pool_mode=transaction, default_pool_size=%d; "+
				"then RUNPOOL_POOLER=pgbouncer and RUNPOOL_BUDGET=its max_client_conn; docs/poolers.md)",
			maxInstances, n, n, reserve, max(budget-reserve, 1))}
	}
	return budgetShare{instances: n, perInstance: int32(per)}, nil
}

// BudgetCheck says what the start-up check does when the budget cannot
// fit what the server allows.
const (
	BudgetCheckWarn  = "warn"  // log a warning and go on (default)
	BudgetCheckError = "error" // fail the constructor
	BudgetCheckOff   = "off"   // do not read the server's limits
)

// ErrBudgetExceedsServer is wrapped by the start-up check's error.
var ErrBudgetExceedsServer = errors.New("runpool: the budget exceeds what the server allows")

// planLimits settles s.MaxConns, and s.fairShare where the server
// enforces the budget, from the configuration and, when known, the
// server's limits, and runs the start-up check. It returns the lines to
// log, one of them saying where the numbers came from when it derived
// the maximum.
//
// Without MaxInstances the division has no divisor: the pool then keeps
// pgxpool's default size (capped by the budget) and warns that N
// instances could overrun the server.
func planLimits(s *settings, server *ServerLimits, platform Platform, instancesKnown bool) ([]event, error) {
	var events []event
	budget, source := s.Budget, "RUNPOOL_BUDGET"
	if budget == 0 && server != nil {
		budget, source = server.Allowance(), "server"
	}
	if budget > 0 && server != nil && s.Budget > server.Allowance() {
		err := fmt.Errorf("%w: RUNPOOL_BUDGET=%d, but this role may hold %d connections (%v); "+
			"lower RUNPOOL_BUDGET to %d or raise the server's limit", ErrBudgetExceedsServer,
			s.Budget, server.Allowance(), server, server.Allowance())
		if s.BudgetCheck == BudgetCheckError {
			return events, err
		}
		events = append(events, s.warn(err.Error()))
	}
	if s.BehindPooler() && s.Budget == 0 && s.MaxConns == 0 {
		events = append(events, s.info("runpool: behind a pooler with no RUNPOOL_BUDGET: set it to the pooler's client limit for this service "+
			"(PgBouncer: max_client_conn) so that instances divide it"))
	}
	if s.MaxConns != 0 || budget == 0 {
		return events, nil // an explicit maximum wins; with no budget, pgxpool's default applies
	}
	if !instancesKnown && s.Budget == 0 {
		s.MaxConns = int32(min(defaultMaxConns(), budget))
		s.capAtConcurrency()
		events = append(events, s.warn("runpool: RUNPOOL_MAX_INSTANCES is not set, so the server's connections are not divided among instances; "+
			"set it (and RUNPOOL_BUDGET) to keep scale-out from overrunning the server",
			"server_allows", budget, "max_conns", s.MaxConns))
		return events, nil
	}
	lim, err := deriveLimits(budget, s.Reserve, s.MaxInstances)
	if err != nil {
		return events, err
	}
	if advice := poolerAdvice(budget, s.Reserve, s.MaxInstances, lim.perInstance); advice != "" && !s.BehindPooler() {
		events = append(events, s.warn(advice))
	}
	s.MaxConns = lim.perInstance
	enforced := server != nil && server.Allowance() <= budget || s.SlotsOn() // the server's limit or the slots (slots.go)
	if enforced {
		s.fairShare = lim.perInstance
		s.MaxConns = max(lim.perInstance, int32((budget-s.Reserve)/2))
	}
	s.capAtConcurrency()
	events = append(events, s.info("runpool: budget derived", "budget", budget, "source", source,
		"reserve", s.Reserve, "max_instances", s.MaxInstances, "divided_by", lim.instances,
		"max_conns", s.MaxConns, "fair_share", lim.perInstance, "borrowing", enforced, "platform", platform.Name))
	return events, nil
}

// tooManyConnections reports SQLSTATE 53300, read through the interface
// pgconn.PgError implements, so the root needs no driver import.
func tooManyConnections(err error) bool {
	var s interface{ SQLState() string }
	return errors.As(err, &s) && s.SQLState() == "53300"
}

// backoff is the wait before the attempt-th retry of a dial the server
// refused with 53300: exponential from 10 ms, capped at 500 ms, with full
// jitter so the instances of a service do not retry in step.
func backoff(attempt int) time.Duration {
	d := min(10*time.Millisecond<<min(attempt, 6), 500*time.Millisecond)
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// sleepCtx waits d, or less when ctx ends first; it reports whether ctx
// is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
