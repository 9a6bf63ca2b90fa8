package pgxadapter

import (
	"context"
	"fmt"

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

// poolRow is pgx's row of Conn.QueryRow over rows already running,
// which releases the connection on Scan.
type poolRow struct {
	rows pgx.Rows
	c    *runpool.Conn[*pconn]
	// again: the query, in the connection's rowQuery, runs once more
	// when the server refused it without running it (Pool.refusedOnce);
	// false when it ran once more already, and after the first Scan.
	again bool
}

// Scan is pgx's connRow.Scan; a query the server refused without running
// it runs once more on another connection (see retry.go).
func (r *poolRow) Scan(dest ...any) error {
	var q rowQuery
	if r.again { // the connection is still this row's
		r.again = false
		pc := r.c.Value()
		q, pc.rowQuery = pc.rowQuery, rowQuery{}
	}
	released := false
	defer func() { // also when Scan panics
		if !released {
			r.c.Release()
		}
	}()
	err := r.scan(dest...)
	if err != nil && q.p != nil {
		var refused bool
		if q.p.refusedOnce(q.ctx, r.c, err, &refused) {
			released = true
			r.c.Release()
			return q.p.queryRow(q.ctx, q.sql, q.args, true).Scan(dest...)
		}
	}
	return err
}

// scan is pgx's connRow.Scan, without the release.
func (r *poolRow) scan(dest ...any) error {
	rows := r.rows
	if rows.Err() != nil {
		rows.Close()
		return rows.Err()
	}
	for _, d := range dest {
		if _, ok := d.(*pgtype.DriverBytes); ok {
			rows.Close()
			return fmt.Errorf("cannot scan into *pgtype.DriverBytes from QueryRow")
		}
	}
	if !rows.Next() {
		if rows.Err() == nil {
			return pgx.ErrNoRows
		}
		return rows.Err()
	}
	_ = rows.Scan(dest...)
	rows.Close()
	return rows.Err()
}

// errRow carries an acquire error to Scan.
type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

type poolBatchResults struct {
	pgx.BatchResults
	c  *runpool.Conn[*pconn] // nil when tx owns the connection
	tx *Tx
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

// Tx is a transaction on a pooled connection, as *pgxpool.Tx: Commit or
// Rollback returns the connection to the pool.
type Tx struct {
	t pgx.Tx
	c *runpool.Conn[*pconn]
}

var _ pgx.Tx = (*Tx)(nil)

// Begin starts a pseudo nested transaction (a savepoint).
func (tx *Tx) Begin(ctx context.Context) (pgx.Tx, error) { return tx.t.Begin(ctx) }

// Commit commits the transaction and returns the connection to the pool.
func (tx *Tx) Commit(ctx context.Context) error {
	err := tx.t.Commit(ctx)
	tx.c.Release()
	return err
}

// Rollback rolls the transaction back and returns the connection to the
// pool; it is safe to call after Commit.
func (tx *Tx) Rollback(ctx context.Context) error {
	err := tx.t.Rollback(ctx)
	tx.c.Release()
	return err
}

// CopyFrom runs COPY FROM within the transaction.
func (tx *Tx) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	return tx.t.CopyFrom(ctx, tableName, columnNames, rowSrc)
}

// SendBatch sends b within the transaction.
func (tx *Tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return tx.t.SendBatch(ctx, b)
}

// LargeObjects returns the large objects of the transaction.
func (tx *Tx) LargeObjects() pgx.LargeObjects { return tx.t.LargeObjects() }

// Prepare creates a prepared statement, as pgx.Tx's does.
func (tx *Tx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return tx.t.Prepare(ctx, name, sql)
}

// Exec runs sql within the transaction.
func (tx *Tx) Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error) {
	return tx.t.Exec(ctx, sql, arguments...)
}

// Query runs sql within the transaction.
func (tx *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return tx.t.Query(ctx, sql, args...)
}

// QueryRow runs sql within the transaction.
func (tx *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return tx.t.QueryRow(ctx, sql, args...)
}

// Conn returns the underlying *pgx.Conn.
func (tx *Tx) Conn() *pgx.Conn { return tx.t.Conn() }

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
