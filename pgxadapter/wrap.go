package pgxadapter

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/runpool/runpool"
)

// The wrappers below return the connection to the pool when the caller is
// done with what the query returned, as pgxpool's do. Releasing twice is
// harmless: runpool.Conn.Release ignores the second call.

type poolRows struct {
	pgx.Rows
	c *runpool.Conn[*pconn]
}

func (r *poolRows) Close() {
	r.Rows.Close()
	r.c.Release()
}

func (r *poolRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *poolRows) Scan(dest ...any) error {
	err := r.Rows.Scan(dest...)
	if err != nil {
		r.Close()
	}
	return err
}

func (r *poolRows) Values() ([]any, error) {
	v, err := r.Rows.Values()
	if err != nil {
		r.Close()
	}
	return v, err
}

type poolRow struct {
	r pgx.Row
	c *runpool.Conn[*pconn]
}

func (r *poolRow) Scan(dest ...any) error {
	defer r.c.Release() // also when Scan panics
	return r.r.Scan(dest...)
}

type poolBatchResults struct {
	pgx.BatchResults
	c  *runpool.Conn[*pconn] // nil when tx owns the connection
	tx *poolTx
}

func (b *poolBatchResults) Close() error {
	err := b.BatchResults.Close()
	if b.c != nil {
		b.c.Release()
	}
	return err
}

func (b *poolBatchResults) Tx() pgx.Tx {
	if b.tx == nil {
		return nil
	}
	return b.tx
}

type poolTx struct {
	pgx.Tx
	c *runpool.Conn[*pconn]
}

func (t *poolTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.c.Release()
	return err
}

func (t *poolTx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	t.c.Release()
	return err
}

// errRows carries an acquire error to where pgx users look for it.

type errRows struct{ err error }

func (errRows) Close()                                       {}
func (e errRows) Err() error                                 { return e.err }
func (errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (errRows) Next() bool                                   { return false }
func (e errRows) Scan(...any) error                          { return e.err }
func (e errRows) Values() ([]any, error)                     { return nil, e.err }
func (errRows) RawValues() [][]byte                          { return nil }
func (errRows) Conn() *pgx.Conn                              { return nil }
func (errRows) TypeMap() *pgtype.Map                         { return nil }
