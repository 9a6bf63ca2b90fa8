// Package pgxadapter is runpool's pool for users of github.com/jackc/pgx/v5:
// a drop-in for github.com/jackc/pgx/v5/pgxpool on top of runpool's
// serverless-aware pool. Change the import
//
//	"github.com/jackc/pgx/v5/pgxpool"
//
// to
//
//	pgxpool "github.com/runpool/runpool/pgxadapter"
//
// (or rename the package in the code) and New, NewWithConfig,
// ParseConfig with its pool_* keys, the Config fields and hooks, the
// tracers, and the methods of Pool, Conn, Tx and Stat work as pgxpool's.
// NewFromEnv and ConfigFromEnv read DATABASE_URL and the RUNPOOL_*
// variables (docs/configuration.md). docs/migrating.md lists the differences that remain and why.
package pgxadapter
