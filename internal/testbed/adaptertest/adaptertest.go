// Package adaptertest lets one test run against every adapter: the
// stale-connection, budget and drain tests are written once against DB and
// run for each entry of Adapters.
package adaptertest

import (
	"context"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/pgxadapter"
)

// DB is what the shared tests need from an adapter's pool.
type DB interface {
	// Exec runs a statement.
	Exec(ctx context.Context, sql string, args ...any) error
	// QueryInt runs a query that returns one integer.
	QueryInt(ctx context.Context, sql string, args ...any) (int64, error)
	// Stat is the runpool snapshot of the pool behind the adapter.
	Stat() *runpool.Stat
	// Shutdown drains the pool.
	Shutdown(ctx context.Context) (runpool.DrainReport, error)
	// Close closes the pool.
	Close()
}

// Adapter opens a DB of one adapter.
type Adapter struct {
	Name string
	// Open opens a pool on connString with the runpool settings cfg.
	Open func(ctx context.Context, connString string, cfg runpool.Config) (DB, error)
}

// Adapters is every adapter, for table-driven tests.
var Adapters = []Adapter{
	{Name: "pgx", Open: openPgx},
}

func openPgx(ctx context.Context, connString string, cfg runpool.Config) (DB, error) {
	pc, err := pgxadapter.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	pc.Pool = cfg
	p, err := pgxadapter.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	return pgxDB{p}, nil
}

type pgxDB struct{ *pgxadapter.Pool }

func (d pgxDB) Exec(ctx context.Context, sql string, args ...any) error {
	_, err := d.Pool.Exec(ctx, sql, args...)
	return err
}

func (d pgxDB) QueryInt(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := d.Pool.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}
