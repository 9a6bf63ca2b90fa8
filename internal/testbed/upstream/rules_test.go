package upstream

import (
	"strings"
	"testing"
)

const stdlibSample = `package stdlib_test

import (
	"database/sql"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

func openDB(t testing.TB, opts ...stdlib.OptionOpenDB) *sql.DB {
	config, _ := pgx.ParseConfig(os.Getenv("PGX_TEST_DATABASE"))
	return stdlib.OpenDB(*config, opts...)
}

func TestRaw(t *testing.T) {
	db, _ := sql.Open("pgx", os.Getenv("PGX_TEST_DATABASE"))
	conn, _ := db.Conn(nil)
	conn.Raw(func(dc any) error {
		_ = dc.(*stdlib.Conn).Conn()
		return nil
	})
}

func TestInternal(t *testing.T) {
	// registration
	stdlib.RegisterConnConfig(nil)
}
`

// TestRewriteStdlib: the stdlib rules leave no use of pgx's stdlib
// package, so no test can pass by testing pgx's driver instead of
// sqladapter's.
func TestRewriteStdlib(t *testing.T) {
	var s Suite
	for _, s = range Suites {
		if s.Name == "stdlib" {
			break
		}
	}
	out, err := s.Rewrite("sql_test.go", []byte(stdlibSample), map[string]string{"TestInternal": "pgx internals"})
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{
		`sql.Open("runpool", os.Getenv("PGX_TEST_DATABASE"))`,
		"Conn() *pgx.Conn\n\t\t}).Conn()",
		`runpoolOpenDB(*config, opts...)`,
		`opts ...any`,
		`t.Skip("expected.txt: pgx internals")`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rewritten file lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "stdlib.") || strings.Contains(got, "pgx/v5/stdlib") || strings.Contains(got, "// registration") {
		t.Errorf("rewritten file still refers to pgx's stdlib or keeps the skipped body:\n%s", got)
	}
}

// TestRewritePgxpool: a pgxpool suite changes its import and nothing else.
func TestRewritePgxpool(t *testing.T) {
	src := "package pgxpool_test\n\nimport \"github.com/jackc/pgx/v5/pgxpool\"\n\nvar _ = pgxpool.New\n"
	out, err := Suites[0].Rewrite("pool_test.go", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "package pgxpool_test\n\nimport pgxpool \"github.com/runpool/runpool/pgxadapter\"\n\nvar _ = pgxpool.New\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

// TestExpectedParses: every line of expected.txt is well formed and has
// a reason.
func TestExpectedParses(t *testing.T) {
	exp, err := Expected()
	if err != nil {
		t.Fatal(err)
	}
	if len(exp) == 0 {
		t.Fatal("expected.txt is empty")
	}
}
