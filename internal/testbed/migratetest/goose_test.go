package migratetest

import (
	"context"
	"database/sql"
	"embed"
	"io/fs"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	_ "github.com/runpool/runpool/sqladapter" // registers the "runpool" driver
)

func TestMain(m *testing.M) { pgtest.Main(m) }

//go:embed migrations/*.sql
var migrations embed.FS

// TestGooseThroughRunpoolDriver: goose applies and rolls back migrations
// (each in a transaction, one with a StatementBegin block) on a *sql.DB
// from sql.Open("runpool", url), and records its versions there.
func TestGooseThroughRunpoolDriver(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	db, err := sql.Open("runpool", srv.URLFor(user, "pw", user))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, dir)
	if err != nil {
		t.Fatal(err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		t.Fatalf("goose up: %v", err)
	}
	if len(results) != 2 {
		t.Fatalf("goose up applied %d migrations, want 2", len(results))
	}
	if v, err := p.GetDBVersion(ctx); err != nil || v != 2 {
		t.Fatalf("version after up: %d, %v; want 2", v, err)
	}
	if _, err := db.ExecContext(ctx, "insert into accounts (email, balance) values ('a@example.com', 12.5)"); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := db.QueryRowContext(ctx, "select account_count()").Scan(&n); err != nil || n != 1 {
		t.Fatalf("account_count() after up: %d, %v; want 1", n, err)
	}

	if _, err := p.Down(ctx); err != nil {
		t.Fatalf("goose down: %v", err)
	}
	if v, err := p.GetDBVersion(ctx); err != nil || v != 1 {
		t.Fatalf("version after down: %d, %v; want 1", v, err)
	}
	var cols int64
	if err := db.QueryRowContext(ctx, "select count(*) from information_schema.columns where table_name = 'accounts' and column_name = 'balance'").Scan(&cols); err != nil || cols != 0 {
		t.Fatalf("balance column after down: %d, %v; want gone", cols, err)
	}
}
