package main

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/runpool/runpool/pgxadapter"
	"github.com/runpool/runpool/sqladapter"
)

// The hand tuning of pgxpool: the best a user can do with its knobs.
const (
	pgxpoolPingTimeout = 250 * time.Millisecond
	pgxpoolHealthCheck = 500 * time.Millisecond
)

// db is what an instance needs from its pool.
type db interface {
	Exec(ctx context.Context, sql string, args ...any) error
	// Shutdown is what the instance does on SIGTERM, for pools that
	// drain (poolKind.drains).
	Shutdown(ctx context.Context)
	Close()
}

// poolKind is one row of every table: a pool and how it is configured.
type poolKind struct {
	name    string // for -pools and role names
	label   string // in the tables
	runpool bool
	// drains: the instance wires SIGTERM to the pool's shutdown. The
	// defaults rows do not, as an application that never did.
	drains bool
	// slots: runpool with RUNPOOL_BUDGET_SLOTS=advisory (runpoolEnv).
	// The row runs only when -pools (or -only slots) names it, and only
	// in the budget scenarios.
	slots bool
	open  func(ctx context.Context, spec instanceSpec) (db, error)
}

// runsIn says whether the row runs in the named scenario.
func (k poolKind) runsIn(scenario string) bool {
	return !k.slots || slices.Contains(budgetScenarios, scenario)
}

// pools are the rows, in table order. "Tuned by hand" is the best a user
// can do with each pool's knobs: idle limits below the
// NAT's timeout, pgxpool's PingTimeout 250 ms and health check every
// 500 ms, the budget divided among instances, SIGTERM wired to Close.
// runpool is configured as a user would: DATABASE_URL, RUNPOOL_BUDGET and
// RUNPOOL_MAX_INSTANCES from the environment, defaults otherwise; the
// slots row adds RUNPOOL_BUDGET_SLOTS=advisory.
var pools = []poolKind{
	{name: "pgxpool", label: "pgxpool defaults", open: openPgxpool},
	{name: "pgxpool-tuned", label: "pgxpool tuned by hand", drains: true, open: openPgxpool},
	{name: "sql", label: "database/sql defaults", open: openSQL},
	{name: "sql-tuned", label: "database/sql tuned by hand", drains: true, open: openSQL},
	{name: "runpool-pgx", label: "runpool (pgxadapter)", runpool: true, drains: true, open: openRunpoolPgx},
	{name: "runpool-sql", label: "runpool (sqladapter)", runpool: true, drains: true, open: openRunpoolSQL},
	{name: "runpool-slots", label: "runpool (pgxadapter, budget slots)", runpool: true, drains: true, slots: true, open: openRunpoolPgx},
	{name: "runpool-sql-slots", label: "runpool (sqladapter, budget slots)", runpool: true, drains: true, slots: true, open: openRunpoolSQL},
}

// staticDivision is the row the slots row is compared with: in the
// budget scenarios each of its instances holds at most budget /
// instances connections.
const staticDivision = "pgxpool-tuned"

// defaultPools are the rows run when -pools is not given: all but the
// slots rows.
func defaultPools() []poolKind {
	return slices.DeleteFunc(slices.Clone(pools), func(k poolKind) bool { return k.slots })
}

// slotsPools are the rows -only slots runs when -pools is not given.
var slotsPools = []string{staticDivision, "runpool-pgx", "runpool-slots"}

func poolByName(name string) (poolKind, bool) {
	i := slices.IndexFunc(pools, func(k poolKind) bool { return k.name == name })
	if i < 0 {
		return poolKind{}, false
	}
	return pools[i], true
}

func poolNames() string { return poolNamesOf(pools) }

func poolNamesOf(ks []poolKind) string {
	var names []string
	for _, k := range ks {
		names = append(names, k.name)
	}
	return strings.Join(names, ",")
}

func tuned(spec instanceSpec) bool { return strings.HasSuffix(spec.Pool, "-tuned") }

func openPgxpool(ctx context.Context, spec instanceSpec) (db, error) {
	cfg, err := pgxpool.ParseConfig(spec.DSN)
	if err != nil {
		return nil, err
	}
	if tuned(spec) {
		cfg.PingTimeout = pgxpoolPingTimeout
		cfg.MaxConnIdleTime = spec.NATIdle / 2
		cfg.HealthCheckPeriod = pgxpoolHealthCheck
		if spec.MaxConns > 0 {
			cfg.MaxConns = int32(spec.MaxConns)
		}
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return pgxpoolDB{p}, nil
}

type pgxpoolDB struct{ *pgxpool.Pool }

func (d pgxpoolDB) Exec(ctx context.Context, sql string, args ...any) error {
	_, err := d.Pool.Exec(ctx, sql, args...)
	return err
}

// Shutdown: pgxpool's Close waits for every borrowed connection.
func (d pgxpoolDB) Shutdown(context.Context) { d.Pool.Close() }

func openSQL(_ context.Context, spec instanceSpec) (db, error) {
	d, err := sql.Open("pgx", spec.DSN)
	if err != nil {
		return nil, err
	}
	if tuned(spec) {
		d.SetConnMaxIdleTime(spec.NATIdle / 2)
		if spec.MaxConns > 0 {
			d.SetMaxOpenConns(spec.MaxConns)
			d.SetMaxIdleConns(spec.MaxConns)
		}
	}
	return sqlDB{d}, nil
}

type sqlDB struct{ *sql.DB }

func (d sqlDB) Exec(ctx context.Context, q string, args ...any) error {
	_, err := d.DB.ExecContext(ctx, q, args...)
	return err
}

// Shutdown: database/sql's Close waits for the queries under way.
func (d sqlDB) Shutdown(context.Context) { d.DB.Close() }

func (d sqlDB) Close() { d.DB.Close() }

func openRunpoolPgx(ctx context.Context, _ instanceSpec) (db, error) {
	p, err := pgxadapter.NewFromEnv(ctx)
	if err != nil {
		return nil, err
	}
	return runpoolPgxDB{p}, nil
}

type runpoolPgxDB struct{ *pgxadapter.Pool }

func (d runpoolPgxDB) Exec(ctx context.Context, sql string, args ...any) error {
	_, err := d.Pool.Exec(ctx, sql, args...)
	return err
}

func (d runpoolPgxDB) Shutdown(ctx context.Context) { d.Pool.Shutdown(ctx) }

func openRunpoolSQL(ctx context.Context, _ instanceSpec) (db, error) {
	d, err := sqladapter.OpenFromEnv(ctx)
	if err != nil {
		return nil, err
	}
	return runpoolSQLDB{sqlDB{d}}, nil
}

type runpoolSQLDB struct{ sqlDB }

func (d runpoolSQLDB) Shutdown(ctx context.Context) { sqladapter.Shutdown(ctx, d.DB) }
