package benchmarks

import (
	"context"
	"database/sql"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for database/sql
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
	"github.com/runpool/runpool/sqladapter"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// poolSize is every pool's connection limit: more than any benchmark's
// goroutines, so no caller waits for a connection and the figures are the
// pools' own cost. (database/sql's default has no limit.)
var poolSize = int32(max(8, runtime.GOMAXPROCS(0)))

// pool is one pool under test, driven through the operations of each
// workload. Each operation is a closure built once per pool, so a call
// costs every pool the same indirect call and allocates nothing itself.
type pool struct {
	name string // the sub-benchmark's pool=<name>, benchstat's column

	// acquireRelease borrows a connection and gives it back: Acquire and
	// Release (pgx), or DB.Conn and Conn.Close (database/sql).
	acquireRelease func(context.Context) error
	// select1 runs SELECT 1 and scans the result into dst.
	select1 func(ctx context.Context, dst *int) error
	// tpcb runs one TPC-B-like transaction (tpcb_test.go).
	tpcb func(context.Context, tpcbOp) error
	// hold borrows a connection until release is called (warm-up only).
	hold func(context.Context) (release func(), err error)
}

// The four pools, in the order each round runs them: each anchor is
// followed by the runpool adapter that replaces it.
var poolNames = []string{"pgxpool", "runpool", "stdlib", "sqladapter"}

// openPools opens the four pools on url and warms each to as many
// connections as a parallel benchmark has goroutines. tb's cleanup closes
// them.
func openPools(tb testing.TB, url string) []*pool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pools := []*pool{openPgxpool(tb, ctx, url), openRunpool(tb, ctx, url), openStdlib(tb, url), openSQLAdapter(tb, ctx, url)}
	for _, p := range pools {
		warm(tb, ctx, p)
	}
	return pools
}

// discard keeps runpool's start and drain lines out of benchmark output.
var discard = slog.New(slog.DiscardHandler)

// openPgxpool: pgxpool with its defaults, but poolSize connections.
func openPgxpool(tb testing.TB, ctx context.Context, url string) *pool {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = poolSize
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	begin := beginner(p.Begin)
	return &pool{
		name: "pgxpool",
		acquireRelease: func(ctx context.Context) error {
			c, err := p.Acquire(ctx)
			if err != nil {
				return err
			}
			c.Release()
			return nil
		},
		select1: func(ctx context.Context, dst *int) error { return p.QueryRow(ctx, "select 1").Scan(dst) },
		tpcb:    func(ctx context.Context, op tpcbOp) error { return tpcbPgx(ctx, begin, op) },
		hold: func(ctx context.Context) (func(), error) {
			c, err := p.Acquire(ctx)
			if err != nil {
				return nil, err
			}
			return c.Release, nil
		},
	}
}

// openRunpool: runpool through pgxadapter with its defaults, but
// poolSize connections.
func openRunpool(tb testing.TB, ctx context.Context, url string) *pool {
	cfg, err := pgxadapter.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = poolSize
	cfg.Pool.Logger = discard
	p, err := pgxadapter.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	begin := beginner(p.Begin)
	return &pool{
		name: "runpool",
		acquireRelease: func(ctx context.Context) error {
			c, err := p.Acquire(ctx)
			if err != nil {
				return err
			}
			c.Release()
			return nil
		},
		select1: func(ctx context.Context, dst *int) error { return p.QueryRow(ctx, "select 1").Scan(dst) },
		tpcb:    func(ctx context.Context, op tpcbOp) error { return tpcbPgx(ctx, begin, op) },
		hold: func(ctx context.Context) (func(), error) {
			c, err := p.Acquire(ctx)
			if err != nil {
				return nil, err
			}
			return c.Release, nil
		},
	}
}

// openStdlib: database/sql with pgx's stdlib driver and database/sql's
// default pool (no limit, 2 idle connections). Only where a parallel
// benchmark has more goroutines than 2 (GOMAXPROCS above 2) does it keep
// as many idle, so that the figures measure the pool rather than a dial
// per checkout.
func openStdlib(tb testing.TB, url string) *pool {
	db, err := sql.Open("pgx", url)
	if err != nil {
		tb.Fatal(err)
	}
	if n := runtime.GOMAXPROCS(0); n > 2 {
		db.SetMaxIdleConns(n)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return sqlPool("stdlib", db)
}

// openSQLAdapter: runpool through sqladapter with its defaults, but
// poolSize connections.
func openSQLAdapter(tb testing.TB, ctx context.Context, url string) *pool {
	cfg, err := sqladapter.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = poolSize
	cfg.Pool.Logger = discard
	db, err := sqladapter.Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return sqlPool("sqladapter", db)
}

func sqlPool(name string, db *sql.DB) *pool {
	return &pool{
		name: name,
		acquireRelease: func(ctx context.Context) error {
			c, err := db.Conn(ctx)
			if err != nil {
				return err
			}
			return c.Close()
		},
		select1: func(ctx context.Context, dst *int) error { return db.QueryRowContext(ctx, "select 1").Scan(dst) },
		tpcb:    func(ctx context.Context, op tpcbOp) error { return tpcbSQL(ctx, db, op) },
		hold: func(ctx context.Context) (func(), error) {
			c, err := db.Conn(ctx)
			if err != nil {
				return nil, err
			}
			return func() { _ = c.Close() }, nil
		},
	}
}

// warm opens as many connections as RunParallel has goroutines, by
// holding that many at once, so that no benchmark times a dial.
// (database/sql's default pool then keeps 2 of them.)
func warm(tb testing.TB, ctx context.Context, p *pool) {
	tb.Helper()
	var releases []func()
	defer func() {
		for _, release := range releases {
			release()
		}
	}()
	for range runtime.GOMAXPROCS(0) {
		release, err := p.hold(ctx)
		if err != nil {
			tb.Fatalf("pool=%s: warm-up: %v", p.name, err)
		}
		releases = append(releases, release)
	}
}

// beginner is Begin of *pgxpool.Pool and of *pgxadapter.Pool.
type beginner func(context.Context) (pgx.Tx, error)
