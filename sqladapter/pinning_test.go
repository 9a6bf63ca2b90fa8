package sqladapter_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/internal/testbed/wiretap"
	"github.com/runpool/runpool/sqladapter"
)

// pinning matches the SQL texts RDS Proxy's guide lists as pinning
// (PostgreSQL); see pgxadapter's TestPinningNoneInPoolerMode.
var pinning = regexp.MustCompile(`(?i)^\s*(SET|RESET|PREPARE|EXECUTE|DEALLOCATE|DISCARD|DECLARE|LISTEN|LOAD)\b|\bset_config\s*\(|pg_(try_)?advisory_|\bCREATE\s+(GLOBAL\s+|LOCAL\s+)?TEMP(ORARY)?\b`)

// TestPinningNoneInPoolerMode: database/sql through runpool with
// RUNPOOL_POOLER=pgbouncer sends no named prepared statement (a
// *sql.Stmt is described, not prepared) and no statement RDS Proxy pins
// on.
func TestPinningNoneInPoolerMode(t *testing.T) {
	s := pgtest.Shared(t)
	s.Exec(t, "CREATE TABLE IF NOT EXISTS pin_probe_sql (id bigint PRIMARY KEY, v text)")
	tap, err := wiretap.Start(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	t.Setenv("DATABASE_URL", strings.Replace(s.URL(), s.Addr(), tap.Addr(), 1))
	t.Setenv("RUNPOOL_POOLER", "pgbouncer")
	ctx := context.Background()
	db, err := sqladapter.OpenFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmt, err := db.PrepareContext(ctx, "SELECT v FROM pin_probe_sql WHERE id = $1")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	for i := range 5 {
		if _, err := db.ExecContext(ctx, "INSERT INTO pin_probe_sql (id, v) VALUES ($1, 'x') ON CONFLICT (id) DO NOTHING", i); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := stmt.QueryRowContext(ctx, i).Scan(&v); err != nil {
			t.Fatal(err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE pin_probe_sql SET v = $2 WHERE id = $1", i, "y"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx, "SELECT id FROM pin_probe_sql WHERE v = $1", "y")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
	}
	var pins []string
	for _, text := range tap.Texts() {
		if pinning.MatchString(text) {
			pins = append(pins, text)
		}
	}
	t.Logf("%d statement texts sent, %d named prepared statements, %d pinning texts %q", len(tap.Texts()), len(tap.Named()), len(pins), pins)
	if n := tap.Named(); len(n) != 0 {
		t.Errorf("named prepared statements sent behind a pooler: %q", n)
	}
	if len(pins) != 0 {
		t.Errorf("statements RDS Proxy pins on sent behind a pooler: %q", pins)
	}
}
