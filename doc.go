// Package runpool is a PostgreSQL connection pool for services that run on
// serverless platforms (Cloud Run, AWS Lambda, Fly Machines, Knative, Azure
// Container Apps).
//
// Such platforms break ordinary pools in four ways: they freeze or throttle
// the process between requests while NAT gateways forget idle flows, so
// pooled connections go stale; every instance has its own pool, so the sum
// overruns the server's max_connections; they stop instances with SIGTERM
// and a short grace period; and nothing tells the operator which of these
// is happening. runpool's pool checks each connection on checkout with a
// bounded probe and notices freezes, derives its size from a budget shared
// by all instances, waits out a server that is away for a moment (a
// restart, a failover), drains inside the grace period and reports what it
// does ([Stat], OpenTelemetry metrics, slog).
//
// Most users want one of the adapters: package pgxadapter (a drop-in for
// the query methods of pgxpool.Pool) or package sqladapter (a *sql.DB).
// Package serve runs an HTTP server and, on SIGTERM, shuts it down and
// drains the pools.
//
// # Using the pool directly
//
// A driver plugs in through a [Connector]. The zero [Config] is usable;
// [ConfigFromEnv] fills one from the RUNPOOL_* variables ([EnvVars] lists
// them). [Open] dials once and reads the server's limits to size the pool,
// [Start] does so only when the size or the start-up check needs them,
// and [New] does no I/O. [Pool.Acquire] lends a [Conn], given back with
// [Conn.Release]; [Pool.Stat] counts what the pool did, and
// [Pool.Shutdown] drains it.
//
// # Why the pool is generic
//
// [Pool] is generic over the connection type C and talks to connections
// only through a [Connector]. The pgx adapter instantiates it with
// *pgx.Conn and the database/sql adapter with the driver connection of
// pgx's stdlib driver. Every defence (the checkout probe, freeze
// detection, the budget gate, 53300 back-pressure, the drain and the
// metrics) is therefore written and tested once, and the two adapters
// cannot drift apart. The price is a type parameter on the pool, which the
// adapters hide from their users.
package runpool
