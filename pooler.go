package runpool

import (
	"fmt"
	"strings"
)

// Behind an external pooler (PgBouncer in transaction mode, Cloud SQL's
// managed connection pooling, Supavisor, RDS Proxy).
//
// A transaction-mode pooler hands each transaction to whichever server
// connection is free, so a client connection has no session of its own
// on the server. Three things change when Config.Pooler says so:
//
//   - Statements: nothing may rely on a named server-side prepared
//     statement outliving its transaction. The adapters switch pgx from
//     its default (prepare and cache named statements) to describe-cached
//     execution: the statement's description is fetched once per client
//     connection with the unnamed statement, and every execution sends
//     its text again (Parse, Bind, Execute in one round trip), so any
//     server connection can run it. database/sql's Stmt is described, not
//     prepared. PgBouncer 1.21+ can track named statements itself
//     (max_prepared_statements), but Debian's 1.18 cannot, and managed
//     poolers vary, so runpool does not depend on it.
//   - Session settings: the server-side reclaim settings (docs/server-reclaim.md) are
//     not sent. PgBouncer rejects unknown startup parameters such as
//     tcp_keepalives_idle, and a SET idle_session_timeout would stay on a
//     server connection that other clients then use. The pooler owns the
//     server sessions; reclaiming a vanished client's slot is its job
//     (PgBouncer: client_idle_timeout, tcp_keepalive). The client-side
//     defences (checkout probe, freeze detection, kernel keepalive,
//     TCP_USER_TIMEOUT) are unchanged: the path to the pooler goes stale
//     exactly like a path to a server.
//   - Budget: max_connections read through the pooler describes the
//     pooler's server side, not how many clients it accepts, so the
//     start-up check does not read it. RUNPOOL_BUDGET is then the
//     pooler's client limit for this service (PgBouncer: max_client_conn,
//     or the per-database/per-user client limit), divided among instances
//     as usual.

// poolerNames lists the values RUNPOOL_POOLER and Config.Pooler accept.
var poolerNames = []string{PoolerNone, PoolerPgBouncer}

// Pooler values.
const (
	// PoolerNone: the pool talks to PostgreSQL itself (default).
	PoolerNone = "none"
	// PoolerPgBouncer: a transaction-mode pooler is in front (PgBouncer,
	// Cloud SQL managed pooling, Supavisor, RDS Proxy).
	PoolerPgBouncer = "pgbouncer"
)

// BehindPooler reports whether c says a transaction-mode pooler is in
// front of the server.
func (c Config) BehindPooler() bool { return c.Pooler == PoolerPgBouncer }

func setPooler(c *Config, v string) error {
	v = strings.ToLower(v)
	for _, p := range poolerNames {
		if v == p {
			c.Pooler = v
			return nil
		}
	}
	return problem("unknown pooler (want one of " + strings.Join(poolerNames, ", ") + ")")
}

// minFairShare is the smallest per-instance share worth dividing: with one
// connection, a slow query holds up every other request of its instance.
const minFairShare = 2

// poolerAdvice explains, when an instance's fair share of the budget
// falls below minFairShare, that the numbers call for an external pooler,
// with the settings to use. It returns "" when the share is enough.
func poolerAdvice(budget, reserve, maxInstances int, perInstance int32) string {
	if perInstance >= minFairShare {
		return ""
	}
	instances := withSurge(maxInstances)
	return fmt.Sprintf("runpool: each instance gets %d connection(s) of RUNPOOL_BUDGET=%d (RUNPOOL_MAX_INSTANCES=%d, %d with the surge margin, "+
		"RUNPOOL_RESERVE=%d): too few to serve concurrent requests. Put a transaction-mode pooler in front instead "+
		"(PgBouncer pool_mode=transaction, default_pool_size=%d, max_client_conn>=%d; or Cloud SQL managed pooling, RDS Proxy, Supavisor) "+
		"and run with RUNPOOL_POOLER=pgbouncer and RUNPOOL_BUDGET set to the pooler's client limit (docs/poolers.md)",
		perInstance, budget, maxInstances, instances, reserve, max(budget-reserve, 1), instances*4)
}
