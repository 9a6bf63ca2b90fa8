package upstream_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/internal/testbed/upstream"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestUpstreamSuites runs pgx's pgxpool and stdlib suites, rewritten to
// runpool's adapters (rules.go), against a throwaway server, and fails on
// any test that fails or skips without a line in expected.txt.
func TestUpstreamSuites(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles and runs pgx's suites: not under -short")
	}
	exp, err := upstream.Expected()
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := os.Getenv("UPSTREAM_DIR") // to read the rewritten suites afterwards
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := upstream.Build(ctx, dir, root, exp)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("upstream: pgx %s from %s", m.PgxVersion, m.PgxDir)
	srv := pgtest.Shared(t)
	// More go test flags for the suites, such as -race or -run.
	flags := strings.Fields(os.Getenv("UPSTREAM_TESTFLAGS"))
	for _, s := range upstream.Suites {
		db := "pgx_" + s.Name
		srv.Exec(t, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		srv.Exec(t, "CREATE DATABASE "+db)
		r, err := m.Run(ctx, s.Name, srv.URLFor("postgres", "", db), flags...)
		if err != nil {
			t.Fatal(err)
		}
		t.Log("upstream: " + r.Summary())
		reasons := map[string]string{}
		for _, e := range exp {
			if e.Suite == s.Name {
				reasons[e.Test] = e.Reason
			}
		}
		for _, name := range r.Skipped {
			t.Logf("upstream: %s %s skipped: %s", s.Name, name, reasons[name])
		}
		for _, name := range r.Failed {
			if why, ok := reasons[name]; ok {
				t.Logf("upstream: %s %s failed, as expected: %s", s.Name, name, why)
			}
		}
		for _, p := range upstream.Check(r, exp) {
			t.Error(p)
		}
	}
}
