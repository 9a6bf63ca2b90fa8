package adaptertest

import (
	"context"
	"database/sql"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/sqladapter"
)

func init() {
	Adapters = append(Adapters, Adapter{Name: "sql", Open: openSQL})
}

func openSQL(ctx context.Context, connString string, cfg runpool.Config) (DB, error) {
	sc, err := sqladapter.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	sc.Pool = cfg
	db, err := sqladapter.Open(ctx, sc)
	if err != nil {
		return nil, err
	}
	return sqlDB{db}, nil
}

// sqlDB runs the shared tests through database/sql.
type sqlDB struct{ db *sql.DB }

func (d sqlDB) Exec(ctx context.Context, q string, args ...any) error {
	_, err := d.db.ExecContext(ctx, q, args...)
	return err
}

func (d sqlDB) QueryInt(ctx context.Context, q string, args ...any) (int64, error) {
	var n int64
	err := d.db.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}

func (d sqlDB) Stat() *runpool.Stat { return sqladapter.Stat(d.db) }

func (d sqlDB) Shutdown(ctx context.Context) (runpool.DrainReport, error) {
	return sqladapter.Shutdown(ctx, d.db)
}

func (d sqlDB) Close() { _ = d.db.Close() }
