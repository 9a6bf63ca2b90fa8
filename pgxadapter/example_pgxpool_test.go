package pgxadapter_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/pgxadapter"
)

// pgxpool's constructor, with pgxpool's pool_* keys in the connection
// string: code written for pgxpool changes only its import.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxadapter.New(ctx, "postgres://app@db.internal/app?pool_max_conns=8&pool_max_conn_idle_time=30s")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "INSERT INTO events (kind) VALUES ($1)", "signup"); err != nil {
		log.Fatal(err)
	}
}

// A fresh credential for every dial, as RDS IAM or Cloud SQL IAM tokens
// need: BeforeConnect runs before each connection is opened, with a copy
// of the connection settings that it may change.
func ExampleConfig_beforeConnect() {
	cfg, err := pgxadapter.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	token := func(ctx context.Context) (string, error) { return "short-lived-token", nil } // your token source
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		t, err := token(ctx)
		cc.Password = t
		return err
	}
	pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
}

// Bound the wait for a connection apart from the request's deadline: a
// request that cannot get a connection within 2 s fails fast with an
// error that says so, while one that got its connection keeps the whole
// deadline for its query.
func ExampleConfig_acquireTimeout() {
	cfg, err := pgxadapter.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	cfg.Pool.AcquireTimeout = 2 * time.Second // or RUNPOOL_ACQUIRE_TIMEOUT=2s
	pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	http.HandleFunc("/report", func(w http.ResponseWriter, r *http.Request) {
		_, err := pool.Exec(r.Context(), "SELECT refresh_report()")
		if errors.Is(err, runpool.ErrAcquireTimeout) {
			http.Error(w, "busy, try again", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}
