// Package pgxadapter is runpool's pool for users of github.com/jackc/pgx/v5:
// a drop-in for the query methods of *pgxpool.Pool (Exec, Query, QueryRow,
// SendBatch, Begin, BeginTx, CopyFrom, Ping, Acquire, AcquireFunc, Close,
// Stat) on top of runpool's serverless-aware pool.
//
// Replace
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//
// with
//
//	pool, err := pgxadapter.NewFromEnv(ctx)
//
// and read docs/configuration.md for the RUNPOOL_* variables.
package pgxadapter
