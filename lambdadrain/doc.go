// Package lambdadrain drains runpool's pools when AWS Lambda shuts an
// execution environment down.
//
// Lambda sends a Go function's process SIGTERM before it ends the
// environment only when an extension is registered; without one the
// environment is frozen after its last invocation and later killed with
// SIGKILL, and the pool never learns it is going. [Start], called in main
// before lambda.Start, registers an internal extension through the
// Extensions API at $AWS_LAMBDA_RUNTIME_API: POST
// /2020-01-01/extension/register with the header Lambda-Extension-Name
// and the body {"events":[]}, then GET /2020-01-01/extension/event/next
// with the Lambda-Extension-Identifier the registration returned. An
// internal extension cannot subscribe to SHUTDOWN and this one subscribes
// to nothing, so that call never returns: it only tells Lambda the
// extension has finished initialising. Registration must happen during
// the Init phase, before the runtime asks for its first invocation; Lambda
// refuses it later (Extension.RegistrationClosed).
//
// On SIGTERM the pools drain together within Lambda's shutdown window for
// a runtime with an internal extension, 500 ms, less a fifth for the
// process to exit (runpool.Platform.DrainTimeout: 400 ms), and the
// process exits before SIGKILL. RUNPOOL_DRAIN_TIMEOUT or Options.Timeout
// override the budget. SIGTERM comes to an environment that sat frozen,
// often longer than its network path keeps an idle flow, so each pool is
// first pinged within half the budget (*pgxadapter.Pool, or a *sql.DB
// through [DB]): the ping gives a stale connection up and leaves a live
// one, through which the drain ends the stale one's server session
// (runpool's orphan ending) before it closes the live one cleanly. A
// goodbye sent on a flow the path forgot would never reach the server.
//
// When no extension can be registered (Lambda refused it, or the Runtime
// API did not answer), Start returns the error and the function keeps
// working: invocations are served as before, but no SIGTERM comes. The
// environment is frozen after its last invocation and ended later without
// warning, and the pool's connections are left to the server. A session
// whose client's socket is closed while its path still knows the flow
// ends at once; one behind a path that forgot the flow while the
// environment sat frozen keeps its max_connections slot until the server
// reclaims it by itself (docs/server-reclaim.md): runpool's server TCP
// keepalives (RUNPOOL_SERVER_KEEPALIVE_IDLE, 30 s by default) end it
// about a minute later, unless something between that terminates TCP
// answers the probes itself; the opt-in idle_session_timeout
// (RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT) bounds it regardless. No other
// instance ends it: a pool ends only the sessions it noted itself.
//
// Off Lambda (AWS_LAMBDA_RUNTIME_API unset) Start registers nothing and
// still drains on SIGTERM, so the same main runs under a local emulator.
package lambdadrain
