package pgxadapter

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
)

// Conn is a connection checked out of a Pool, like *pgxpool.Conn. It is
// the root pool's handle under another name, so a checkout allocates
// nothing.
type Conn runpool.Conn[*pconn]

func (c *Conn) rc() *runpool.Conn[*pconn] { return (*runpool.Conn[*pconn])(c) }

// Release returns the connection to the pool. It is safe to call more
// than once.
func (c *Conn) Release() { c.rc().Release() }

// Hijack takes the connection out of the pool and returns it, as
// pgxpool's Hijack does: the pool no longer counts, closes or drains it,
// BeforeClose does not run for it, and the caller must close it. Hijack
// panics on a Conn already released or hijacked.
func (c *Conn) Hijack() *pgx.Conn { return c.rc().Hijack().Pgx }

// Conn returns the underlying *pgx.Conn. Do not use it after Release.
func (c *Conn) Conn() *pgx.Conn { return c.rc().Value().Pgx }

// Exec runs sql.
func (c *Conn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return c.Conn().Exec(ctx, sql, args...)
}

// Query runs sql.
func (c *Conn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return c.Conn().Query(ctx, sql, args...)
}

// QueryRow runs sql and returns its first row.
func (c *Conn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return c.Conn().QueryRow(ctx, sql, args...)
}

// SendBatch sends b.
func (c *Conn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return c.Conn().SendBatch(ctx, b)
}

// Begin starts a transaction.
func (c *Conn) Begin(ctx context.Context) (pgx.Tx, error) { return c.Conn().Begin(ctx) }

// BeginTx starts a transaction with options.
func (c *Conn) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	return c.Conn().BeginTx(ctx, opts)
}

// CopyFrom runs COPY FROM.
func (c *Conn) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return c.Conn().CopyFrom(ctx, table, columns, src)
}

// Ping checks that the server answers.
func (c *Conn) Ping(ctx context.Context) error { return c.Conn().Ping(ctx) }
