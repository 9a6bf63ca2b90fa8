package benchmarks

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// The TPC-B-like workload of pgbench (its built-in default script), on
// pgbench's tables at scale tpcbScale, with a tenth of pgbench's accounts
// per branch so that a round loads them in a fraction of a second. Each
// branch is updated by every transaction that draws it, so a scale below
// the number of goroutines would make the benchmark measure lock waits;
// pgbench's advice is a scale of at least the number of clients.
const (
	tpcbScale         = 4
	tellersPerBranch  = 10     // as pgbench
	accountsPerBranch = 10_000 // pgbench: 100,000
)

var tpcbSchema = fmt.Sprintf(`
CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int NOT NULL, filler char(88));
CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int NOT NULL, tbalance int NOT NULL, filler char(84));
CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84));
CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
INSERT INTO pgbench_branches (bid, bbalance) SELECT g, 0 FROM generate_series(1, %[1]d) g;
INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT g, (g-1)/%[2]d + 1, 0 FROM generate_series(1, %[1]d*%[2]d) g;
INSERT INTO pgbench_accounts (aid, bid, abalance) SELECT g, (g-1)/%[3]d + 1, 0 FROM generate_series(1, %[1]d*%[3]d) g;
`, tpcbScale, tellersPerBranch, accountsPerBranch)

// tpcbDatabase creates a fresh role and database on the shared server,
// loads pgbench's tables there and returns the URL to connect with. tb's
// cleanup drops the database (and with it the history the round wrote).
func tpcbDatabase(tb testing.TB) string {
	tb.Helper()
	srv := pgtest.Shared(tb)
	user := srv.CreateRole(tb, -1)
	url := srv.URLFor(user, "pw", user)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	// VACUUM cannot share the schema's implicit transaction.
	for _, sql := range []string{tpcbSchema, "VACUUM ANALYZE"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			tb.Fatalf("TPC-B tables: %v", err)
		}
	}
	return url
}

// tpcbOp is one transaction's draw, as pgbench's script draws it.
type tpcbOp struct {
	aid, bid, tid, delta int
}

func drawTPCB() tpcbOp {
	return tpcbOp{
		aid:   1 + rand.IntN(tpcbScale*accountsPerBranch),
		bid:   1 + rand.IntN(tpcbScale),
		tid:   1 + rand.IntN(tpcbScale*tellersPerBranch),
		delta: rand.IntN(10001) - 5000,
	}
}

// pgbench's "tpcb-like" script, statement for statement.
const (
	tpcbUpdateAccount = "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"
	tpcbSelectAccount = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
	tpcbUpdateTeller  = "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2"
	tpcbUpdateBranch  = "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2"
	tpcbInsertHistory = "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)"
)

// tpcbPgx runs one transaction through a pgx pool's Begin.
func tpcbPgx(ctx context.Context, begin beginner, op tpcbOp) error {
	tx, err := begin(ctx)
	if err != nil {
		return err
	}
	if err := tpcbStatementsPgx(ctx, tx, op); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

func tpcbStatementsPgx(ctx context.Context, tx pgx.Tx, op tpcbOp) error {
	if _, err := tx.Exec(ctx, tpcbUpdateAccount, op.delta, op.aid); err != nil {
		return err
	}
	var balance int
	if err := tx.QueryRow(ctx, tpcbSelectAccount, op.aid).Scan(&balance); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, tpcbUpdateTeller, op.delta, op.tid); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, tpcbUpdateBranch, op.delta, op.bid); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, tpcbInsertHistory, op.tid, op.bid, op.aid, op.delta)
	return err
}

// tpcbSQL runs one transaction through database/sql.
func tpcbSQL(ctx context.Context, db *sql.DB, op tpcbOp) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := tpcbStatementsSQL(ctx, tx, op); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func tpcbStatementsSQL(ctx context.Context, tx *sql.Tx, op tpcbOp) error {
	if _, err := tx.ExecContext(ctx, tpcbUpdateAccount, op.delta, op.aid); err != nil {
		return err
	}
	var balance int
	if err := tx.QueryRowContext(ctx, tpcbSelectAccount, op.aid).Scan(&balance); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, tpcbUpdateTeller, op.delta, op.tid); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, tpcbUpdateBranch, op.delta, op.bid); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, tpcbInsertHistory, op.tid, op.bid, op.aid, op.delta)
	return err
}
