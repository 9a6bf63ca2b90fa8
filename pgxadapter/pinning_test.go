package pgxadapter_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/internal/testbed/wiretap"
	"github.com/runpool/runpool/pgxadapter"
)

// pinning matches the SQL texts RDS Proxy's guide lists as pinning a
// client connection to one server connection (PostgreSQL): session
// settings (SET, RESET, set_config), SQL-level prepared statements,
// DISCARD, temporary tables, sequences and views, cursors, LISTEN, LOAD,
// advisory locks. Named prepared statements at the protocol level are
// counted apart (wiretap.Named).
var pinning = regexp.MustCompile(`(?i)^\s*(SET|RESET|PREPARE|EXECUTE|DEALLOCATE|DISCARD|DECLARE|LISTEN|LOAD)\b|\bset_config\s*\(|pg_(try_)?advisory_|\bCREATE\s+(GLOBAL\s+|LOCAL\s+)?TEMP(ORARY)?\b`)

// TestPinningNoneInPoolerMode: with RUNPOOL_POOLER=pgbouncer (how runpool
// is told RDS Proxy, or any transaction-mode pooler, is in front), the
// pool and pgx send nothing RDS Proxy pins on: no named prepared
// statement (pgx's default mode prepares and caches named statements;
// pooler mode describes through the unnamed one), and no session
// setting, at connect time or after. A protocol tap between the pool and
// the server records every statement text and statement name sent; the
// same workload without pooler mode is the control, where the tap sees
// the named statements.
func TestPinningNoneInPoolerMode(t *testing.T) {
	s := pgtest.Shared(t)
	s.Exec(t, "CREATE TABLE IF NOT EXISTS pin_probe (id bigint PRIMARY KEY, v text)")
	for _, pooler := range []string{"pgbouncer", "none"} {
		t.Run(pooler, func(t *testing.T) {
			tap, err := wiretap.Start(s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tap.Close() })
			t.Setenv("DATABASE_URL", strings.Replace(s.URL(), s.Addr(), tap.Addr(), 1))
			t.Setenv("RUNPOOL_POOLER", pooler)
			pool, err := pgxadapter.NewFromEnv(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			pinWorkload(t, pool, pooler)

			named := tap.Named()
			var pins []string
			for _, text := range tap.Texts() {
				if pinning.MatchString(text) {
					pins = append(pins, text)
				}
			}
			t.Logf("RUNPOOL_POOLER=%s: %d statement texts sent, %d named prepared statements, %d pinning texts %q",
				pooler, len(tap.Texts()), len(named), len(pins), pins)
			if pooler == "none" {
				if len(named) == 0 {
					t.Fatal("control: pgx's default mode sent no named statement; the tap sees nothing")
				}
				return
			}
			if len(named) != 0 {
				t.Errorf("named prepared statements sent behind a pooler: %q", named)
			}
			if len(pins) != 0 {
				t.Errorf("statements RDS Proxy pins on sent behind a pooler: %q", pins)
			}
		})
	}
}

// pinWorkload runs each of the pool's query paths several times (pgx
// prepares a statement on its first use and caches it).
func pinWorkload(t *testing.T, pool *pgxadapter.Pool, tag string) {
	ctx := context.Background()
	base := int64(len(tag)) << 32
	for i := range int64(5) {
		id := base + i
		if _, err := pool.Exec(ctx, "INSERT INTO pin_probe (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = excluded.v", id, tag); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := pool.QueryRow(ctx, "SELECT v FROM pin_probe WHERE id = $1", id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		rows, err := pool.Query(ctx, "SELECT id FROM pin_probe WHERE v = $1 ORDER BY id", tag)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			t.Fatal(err)
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "UPDATE pin_probe SET v = $2 WHERE id = $1", id, tag); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		b := &pgx.Batch{}
		b.Queue("SELECT count(*) FROM pin_probe WHERE v = $1", tag)
		b.Queue("SELECT $1::int + 1", int(i))
		if err := pool.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRow(ctx, "SELECT $1::text", tag).Scan(&v); err != nil {
			t.Fatal(err)
		}
		c.Release()
		if err := pool.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
