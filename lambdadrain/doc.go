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
// override the budget.
//
// When no extension can be registered (Lambda refused it, or the Runtime
// API did not answer), Start returns the error and the function keeps
// working: invocations are served as before, but no SIGTERM comes. The
// environment is frozen after its last invocation and killed later. When
// the kernel closes the killed process's sockets, a server whose path
// still knows the flow ends the sessions at once; a path that forgot the
// flow while the environment sat frozen leaves the backends waiting, and
// the server reclaims their slots by itself: runpool's server TCP
// keepalives (RUNPOOL_SERVER_KEEPALIVE_IDLE, 30 s by default) end them
// about a minute later, sooner with the opt-in idle_session_timeout
// (RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT). No other instance ends them: a
// pool ends only the orphaned sessions it noted itself. Keep
// RUNPOOL_MAX_INSTANCES (the function's reserved concurrency) honest so
// that the budget leaves room for such slots.
//
// Off Lambda (AWS_LAMBDA_RUNTIME_API unset) Start registers nothing and
// still drains on SIGTERM, so the same main runs under a local emulator.
package lambdadrain
