package pgxadapter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

const secret = "s3cr3t-Pa55"

// A connection string pgx cannot parse gives an error that names the
// setting and never shows the password.
func TestBadDatabaseURLHidesPassword(t *testing.T) {
	for _, url := range []string{
		"postgres://app:" + secret + "@db:notaport/app",
		"host=db port=notaport user=app password=" + secret,
		"postgres://app:" + secret + "@db/app?sslmode=bogus",
	} {
		t.Setenv("DATABASE_URL", url)
		_, err := pgxadapter.ConfigFromEnv()
		if err == nil {
			t.Fatalf("%q parsed", url)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
			t.Fatalf("error shows the password: %v", err)
		}
		var ce *runpool.ConfigError
		if !errors.As(err, &ce) || ce.Setting != "DATABASE_URL" {
			t.Fatalf("error does not name DATABASE_URL: %v", err)
		}
	}
}

// With DATABASE_URL unset, the standard PG* variables name the server.
func TestPGVariables(t *testing.T) {
	srv := pgtest.Shared(t)
	t.Setenv("DATABASE_URL", "")
	t.Setenv("PGHOST", srv.Host)
	t.Setenv("PGPORT", fmt.Sprint(srv.Port))
	t.Setenv("PGUSER", "postgres")
	t.Setenv("PGDATABASE", "postgres")
	t.Setenv("PGSSLMODE", "disable")
	t.Setenv("RUNPOOL_MAX_CONNS", "3")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := pgxadapter.NewFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var port int
	if err := p.QueryRow(ctx, "SELECT current_setting('port')::int").Scan(&port); err != nil || port != srv.Port {
		t.Fatalf("port %d, %v; want %d", port, err, srv.Port)
	}
	if p.Stat().MaxConns() != 3 {
		t.Fatalf("MaxConns %d, want RUNPOOL_MAX_CONNS=3", p.Stat().MaxConns())
	}
}

// A bad RUNPOOL_* value fails NewFromEnv with the variable's name.
func TestNewFromEnvBadVariable(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://app:"+secret+"@127.0.0.1:1/app")
	t.Setenv("RUNPOOL_PROBE_TIMEOUT", "soon")
	_, err := pgxadapter.NewFromEnv(context.Background())
	if err == nil || !strings.Contains(err.Error(), "RUNPOOL_PROBE_TIMEOUT") {
		t.Fatalf("got %v, want an error naming RUNPOOL_PROBE_TIMEOUT", err)
	}
}

// An unreachable server does not fail NewWithConfig, as with pgxpool
// (which opens nothing there either), but the first query: with the
// address and without the password.
func TestNewUnreachable(t *testing.T) {
	cfg, err := pgxadapter.ParseConfig("postgres://app:" + secret + "@127.0.0.1:1/app?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Pool.ServerAwayTimeout = -1 // refused is final here
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := pgxadapter.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("NewWithConfig dialed: %v", err)
	}
	defer p.Close()
	err = p.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), secret) {
		t.Fatalf("got %v", err)
	}
	if s := cfg.String(); strings.Contains(s, secret) {
		t.Fatalf("String() shows the password: %s", s)
	}
}

// When the pool's size must come from the server's limits
// (RUNPOOL_MAX_INSTANCES without a MaxConns or a budget), or the start-up
// check needs them (a budget to compare, or the check set to fail the
// start), NewWithConfig dials once and an unreachable server fails it,
// with the address and without the password.
func TestNewUnreachableWhenTheServerSizesThePool(t *testing.T) {
	for _, env := range [][2]string{{"RUNPOOL_MAX_INSTANCES", "4"}, {"RUNPOOL_BUDGET", "10"}, {"RUNPOOL_BUDGET_CHECK", "error"}} {
		t.Run(env[0], func(t *testing.T) {
			t.Setenv(env[0], env[1])
			t.Setenv("RUNPOOL_SERVER_AWAY_TIMEOUT", "off")
			cfg, err := pgxadapter.ParseConfig("postgres://app:" + secret + "@127.0.0.1:1/app?connect_timeout=2")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = pgxadapter.NewWithConfig(ctx, cfg)
			if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), secret) {
				t.Fatalf("got %v", err)
			}
		})
	}
}
