package conformance

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgbouncertest"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
	"github.com/runpool/runpool/sqladapter"
)

// Behind PgBouncer in transaction mode (Debian's PgBouncer, started per
// test in front of the shared server, 4 server connections per user).

const bouncerPool = 4

// behindBouncer creates a role and a PgBouncer for it, and returns the
// role and the DSN through PgBouncer.
func behindBouncer(t *testing.T) (*pgtest.Server, *pgbouncertest.Bouncer, string, string) {
	t.Helper()
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	b := pgbouncertest.Start(t, pgbouncertest.Options{Target: srv.Addr(), Users: []string{user}, PoolSize: bouncerPool})
	return srv, b, user, b.URLFor(user, "pw", user)
}

var poolerCfg = runpool.Config{Pooler: runpool.PoolerPgBouncer, MaxConns: 32, Logger: quiet}

// checkNoSessionLeak fails when a setting the pool might have sent is
// visible on the server connections other clients get.
func checkNoSessionLeak(t *testing.T, dsn string) {
	t.Helper()
	for _, err := range sessionLeaks(dsn) {
		t.Error(err)
	}
}

// sessionLeaks looks at every server connection of the role's PgBouncer
// pool (one client per server connection at once, each holding its own in
// a transaction) for a reclaim setting a client set, by startup parameter
// (pg_settings source "client") or SET ("session").
func sessionLeaks(dsn string) []error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return []error{err}
	}
	cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	var wg sync.WaitGroup
	errs := make(chan error, bouncerPool)
	for range bouncerPool {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.ConnectConfig(ctx, cc)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			tx, err := conn.Begin(ctx) // holds the server connection while the others look
			if err != nil {
				errs <- err
				return
			}
			defer tx.Rollback(ctx)
			rows, _ := tx.Query(ctx, `SELECT name || '=' || setting FROM pg_settings, pg_sleep(0.05)
				WHERE name IN ('idle_session_timeout', 'tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count')
				AND source IN ('client', 'session')`)
			set, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				errs <- err
				return
			}
			if len(set) > 0 {
				errs <- fmt.Errorf("a server connection carries %v from a client: a session setting leaked", set)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// The leak check sees a leak: a client's SET outside a transaction stays
// on PgBouncer's server connection for the next client.
func TestPgBouncerLeakCheckSeesASet(t *testing.T) {
	_, b, _, dsn := behindBouncer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.Log())
	}
	if _, err := conn.Exec(ctx, "SET tcp_keepalives_idle = 100"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if errs := sessionLeaks(dsn); len(errs) == 0 {
		t.Fatal("a SET outside a transaction went unnoticed")
	} else {
		t.Log(errs[0])
	}
}

// TestPgBouncerPgxQueries runs the foundation's query kinds through
// PgBouncer with pgxadapter: Exec, Query, QueryRow, Begin/Commit/Rollback,
// SendBatch and CopyFrom, each many times from 32 goroutines over 4
// server connections, so statements meet server connections other than
// the one that first saw them.
func TestPgBouncerPgxQueries(t *testing.T) {
	srv, b, user, dsn := behindBouncer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgxadapter.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pc.Pool = poolerCfg
	p, err := pgxadapter.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatalf("open through pgbouncer: %v\n%s", err, b.Log())
	}
	defer p.Close()
	if _, err := p.Exec(ctx, "CREATE TABLE items (id int, name text)"); err != nil {
		t.Fatal(err)
	}

	const clients, rounds = 32, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := pgxRound(ctx, p, g*1000+r+1); err != nil {
					errs <- fmt.Errorf("client %d round %d: %w", g, r, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	failures := 0
	for err := range errs {
		if failures++; failures <= 5 {
			t.Error(err)
		}
	}
	var n int64
	if err := p.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Fatal(err)
	}
	// Per round: 1 Exec + 1 committed tx + 2 batch rows + 3 copied rows.
	if want := int64(clients * rounds * 7); n != want && failures == 0 {
		t.Errorf("items: %d rows, want %d", n, want)
	}
	if got := srv.Backends(t, user); got > bouncerPool {
		t.Errorf("server backends of the role: %d, want at most PgBouncer's %d", got, bouncerPool)
	}
	checkNoSessionLeak(t, dsn)
}

func pgxRound(ctx context.Context, p *pgxadapter.Pool, id int) error {
	name := fmt.Sprint("n", id)
	if _, err := p.Exec(ctx, "INSERT INTO items VALUES ($1, $2)", id, name); err != nil {
		return fmt.Errorf("Exec: %w", err)
	}
	var got string
	if err := p.QueryRow(ctx, "SELECT name FROM items WHERE id = $1 LIMIT 1", id).Scan(&got); err != nil || got != name {
		return fmt.Errorf("QueryRow: %q, %v", got, err)
	}
	rows, err := p.Query(ctx, "SELECT g FROM generate_series(1, $1::int) g", 3)
	if err != nil {
		return fmt.Errorf("Query: %w", err)
	}
	sum, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil || len(sum) != 3 {
		return fmt.Errorf("Query rows: %v, %v", sum, err)
	}
	tx, err := p.Begin(ctx)
	if err != nil {
		return fmt.Errorf("Begin: %w", err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO items VALUES ($1, $2)", -id, name); err != nil {
		tx.Rollback(ctx)
		return fmt.Errorf("tx Exec: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("Commit: %w", err)
	}
	tx, err = p.Begin(ctx)
	if err != nil {
		return fmt.Errorf("Begin: %w", err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO items VALUES ($1, $2)", -id, "rolled back"); err != nil {
		tx.Rollback(ctx)
		return fmt.Errorf("tx Exec: %w", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		return fmt.Errorf("Rollback: %w", err)
	}
	batch := &pgx.Batch{}
	batch.Queue("INSERT INTO items VALUES ($1, $2)", id, name)
	batch.Queue("INSERT INTO items VALUES ($1, $2)", id, name)
	batch.Queue("SELECT count(*) FROM items WHERE id = $1", id)
	br := p.SendBatch(ctx, batch)
	for range 2 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("SendBatch: %w", err)
		}
	}
	var n int64
	if err := br.QueryRow().Scan(&n); err != nil || n != 3 {
		br.Close()
		return fmt.Errorf("SendBatch count: %d, %v", n, err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("SendBatch Close: %w", err)
	}
	copied, err := p.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "name"},
		pgx.CopyFromRows([][]any{{id, "c1"}, {id, "c2"}, {id, "c3"}}))
	if err != nil || copied != 3 {
		return fmt.Errorf("CopyFrom: %d, %w", copied, err)
	}
	return nil
}

// TestPgBouncerSQLQueries does the same through database/sql, prepared
// statements (sql.Stmt) included: one Stmt used by 32 goroutines, so it
// runs on every client connection and every server connection.
func TestPgBouncerSQLQueries(t *testing.T) {
	srv, b, user, dsn := behindBouncer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, err := sqladapter.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	sc.Pool = poolerCfg
	db, err := sqladapter.Open(ctx, sc)
	if err != nil {
		t.Fatalf("open through pgbouncer: %v\n%s", err, b.Log())
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE items (id int, name text)"); err != nil {
		t.Fatal(err)
	}
	insert, err := db.PrepareContext(ctx, "INSERT INTO items VALUES ($1, $2)")
	if err != nil {
		t.Fatal(err)
	}
	defer insert.Close()
	lookup, err := db.PrepareContext(ctx, "SELECT name FROM items WHERE id = $1 LIMIT 1")
	if err != nil {
		t.Fatal(err)
	}
	defer lookup.Close()

	const clients, rounds = 32, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := sqlRound(ctx, db, insert, lookup, g*1000+r+1); err != nil {
					errs <- fmt.Errorf("client %d round %d: %w", g, r, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	failures := 0
	for err := range errs {
		if failures++; failures <= 5 {
			t.Error(err)
		}
	}
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Fatal(err)
	}
	// Per round: 1 Stmt insert + 1 committed tx (Exec and Stmt) + 1 Exec.
	if want := int64(clients * rounds * 4); n != want && failures == 0 {
		t.Errorf("items: %d rows, want %d", n, want)
	}
	if got := srv.Backends(t, user); got > bouncerPool {
		t.Errorf("server backends of the role: %d, want at most PgBouncer's %d", got, bouncerPool)
	}
	checkNoSessionLeak(t, dsn)
}

func sqlRound(ctx context.Context, db *sql.DB, insert, lookup *sql.Stmt, id int) error {
	name := fmt.Sprint("n", id)
	if _, err := insert.ExecContext(ctx, id, name); err != nil {
		return fmt.Errorf("Stmt Exec: %w", err)
	}
	var got string
	if err := lookup.QueryRowContext(ctx, id).Scan(&got); err != nil || got != name {
		return fmt.Errorf("Stmt QueryRow: %q, %v", got, err)
	}
	rows, err := db.QueryContext(ctx, "SELECT g FROM generate_series(1, $1::int) g", 3)
	if err != nil {
		return fmt.Errorf("Query: %w", err)
	}
	k := 0
	for rows.Next() {
		k++
	}
	if err := rows.Err(); err != nil || k != 3 {
		return fmt.Errorf("Query rows: %d, %v", k, err)
	}
	rows.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("Begin: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO items VALUES ($1, $2)", -id, name); err != nil {
		tx.Rollback()
		return fmt.Errorf("tx Exec: %w", err)
	}
	if _, err := tx.StmtContext(ctx, insert).ExecContext(ctx, -id, name); err != nil {
		tx.Rollback()
		return fmt.Errorf("tx Stmt Exec: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("Commit: %w", err)
	}
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("Begin: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO items VALUES ($1, 'rolled back')", -id); err != nil {
		tx.Rollback()
		return fmt.Errorf("tx Exec: %w", err)
	}
	if err := tx.Rollback(); err != nil {
		return fmt.Errorf("Rollback: %w", err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO items VALUES ($1, $2)", id, name); err != nil {
		return fmt.Errorf("Exec: %w", err)
	}
	return nil
}

// TestPgBouncerWithoutPoolerMode is the control: the same pool without
// RUNPOOL_POOLER=pgbouncer cannot work through PgBouncer, so the tests
// above show what the mode does. PgBouncer refuses the server-side
// reclaim settings in the startup packet; with those off too, pgx's named
// prepared statements fail once a client meets another server connection.
func TestPgBouncerWithoutPoolerMode(t *testing.T) {
	_, b, _, dsn := behindBouncer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pc, err := pgxadapter.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pc.Pool = runpool.Config{MaxConns: 32, Logger: quiet, ServerAwayTimeout: -1}
	// NewWithConfig opens nothing (MaxConns is set): the first statement dials.
	p, err := pgxadapter.NewWithConfig(ctx, pc)
	if err == nil {
		err = p.Ping(ctx)
		p.Close()
	}
	if err == nil {
		t.Fatal("a pool sending the reclaim settings at startup connected through PgBouncer")
	} else if !strings.Contains(err.Error(), "unsupported startup parameter") {
		t.Fatalf("want PgBouncer's 'unsupported startup parameter', got %v", err)
	}

	pc.Pool.ServerKeepAliveIdle, pc.Pool.ServerIdleSessionTimeout = -1, -1
	p, err = pgxadapter.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.Log())
	}
	defer p.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 10 {
				var n int
				err := p.QueryRow(ctx, "SELECT $1::int + 0 FROM pg_sleep(0.001)", g*100+r).Scan(&n)
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if failed == nil {
		t.Fatal("named prepared statements through transaction pooling never failed: the control shows nothing")
	}
	t.Logf("without the pooler mode: %v", failed)
}

// TestPgBouncerFreezeBehindNAT: a NAT that forgets idle flows sits between
// the instance and PgBouncer; the instance is frozen past its timeout, and
// its next burst is served in full.
func TestPgBouncerFreezeBehindNAT(t *testing.T) {
	for _, a := range adaptertest.Adapters {
		for _, mode := range modes {
			t.Run(a.Name+"/"+mode.String(), func(t *testing.T) {
				t.Parallel() // each has its own PgBouncer, NAT and instance; freezes overlap
				_, b, user, _ := behindBouncer(t)
				nat, err := faultproxy.Start(faultproxy.Config{Target: b.Addr(), Mode: mode})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { nat.Close() })
				dsn := b.URLFor(user, "pw", user)
				dsn = strings.Replace(dsn, b.Addr(), nat.Addr(), 1)
				cfg := runpool.Config{Pooler: runpool.PoolerPgBouncer, MaxConns: 8}
				inst := startInstance(t, a.Name, dsn, cfg)
				warm := inst.burst(t, 8, 20*time.Millisecond, deadline)
				if warm.Failed > 0 {
					t.Fatalf("warm-up: %v", warm)
				}
				inst.freeze(t, frozen, nat.Expire)
				r := inst.burst(t, burstN, query, deadline)
				if nat.Dropped() == 0 {
					t.Fatal("the NAT forgot no flow: the scenario did not happen")
				}
				ref := startInstance(t, a.Name, dsn, cfg).burst(t, burstN, query, deadline)
				checkBurst(t, r, warm, ref, freshDialPooler(t, a, dsn))
			})
		}
	}
}

// freshDialPooler is freshDial in the pooler mode: one connection set-up
// through the NAT and PgBouncer, plus the query.
func freshDialPooler(t *testing.T, a adaptertest.Adapter, dsn string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	db, err := a.Open(ctx, dsn, runpool.Config{Pooler: runpool.PoolerPgBouncer, MaxConns: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Exec(ctx, "SELECT pg_sleep($1)", query.Seconds()); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// TestPgBouncerBudgetIsTheClientLimit: behind a pooler, the server's
// limits (here a role CONNECTION LIMIT of 2, the pooler's server side)
// are not the budget; RUNPOOL_BUDGET, the pooler's client limit, is
// divided among instances, and nothing warns that it exceeds the server.
func TestPgBouncerBudgetIsTheClientLimit(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, 2)
	b := pgbouncertest.Start(t, pgbouncertest.Options{Target: srv.Addr(), Users: []string{user}, PoolSize: 2})
	dsn := b.URLFor(user, "pw", user)
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			var logs strings.Builder
			var mu sync.Mutex
			cfg := runpool.Config{Pooler: runpool.PoolerPgBouncer, Budget: 40, MaxInstances: 2,
				Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))}
			db := open(t, a, dsn, cfg)
			// 40 / ceil(2 * 1.1) = 13 per instance; the server's 2 would give 1.
			if got := db.Stat().MaxConns(); got != 13 {
				t.Errorf("MaxConns %d, want 13 from RUNPOOL_BUDGET=40 over 3 instances", got)
			}
			r := burst(db, 13, 20*time.Millisecond, deadline)
			if r.Failed > 0 {
				t.Fatalf("13 clients over PgBouncer's 2 server connections: %v: %v", r, r.Errors[0])
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(logs.String(), "exceeds") || strings.Contains(logs.String(), "max_connections") {
				t.Errorf("the start-up check compared the budget with the server's limits:\n%s", logs.String())
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// PgBouncer's client_idle_timeout (set below the pool's idle limit here,
// against the README's advice) closes the pool's idle connections; the
// next burst is served in full, the closed ones replaced on checkout.
func TestPgBouncerClientIdleTimeout(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	b := pgbouncertest.Start(t, pgbouncertest.Options{Target: srv.Addr(), Users: []string{user},
		PoolSize: bouncerPool, Settings: map[string]string{"client_idle_timeout": "1"}})
	dsn := b.URLFor(user, "pw", user)
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			db := open(t, a, dsn, runpool.Config{Pooler: runpool.PoolerPgBouncer, MaxConns: 8})
			if r := burst(db, 8, 20*time.Millisecond, deadline); r.Failed > 0 {
				t.Fatalf("warm-up: %v", r)
			}
			clients := func() int {
				n := 0
				for _, row := range b.Admin(t, "SHOW CLIENTS") {
					if slices.Contains(row, user) {
						n++
					}
				}
				return n
			}
			if clients() == 0 {
				t.Fatal("SHOW CLIENTS lists none of the pool's connections after the warm-up")
			}
			// PgBouncer looks for idle clients about once a second.
			for end := time.Now().Add(5 * time.Second); clients() > 0 && time.Now().Before(end); {
				time.Sleep(200 * time.Millisecond)
			}
			if n := clients(); n > 0 {
				t.Fatalf("PgBouncer still has %d idle clients of the pool: the scenario did not happen", n)
			}
			r := burst(db, burstN, query, deadline)
			t.Logf("after PgBouncer closed every idle client: %v", r)
			if r.Failed > 0 {
				t.Fatalf("%d of %d requests failed: %v", r.Failed, r.OK+r.Failed, r.Errors[0])
			}
		})
	}
}
