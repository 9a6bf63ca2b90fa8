// Command service is the runpool example a Cloud Run user copies: an HTTP
// service whose handlers query PostgreSQL through runpool, and that drains
// on SIGTERM inside the platform's grace period.
//
//	GET /healthz     200 "ok"
//	GET /work?ms=N   runs one query that takes N ms
//
// It listens on $PORT (default 8080), reads DATABASE_URL and RUNPOOL_*
// from the environment, and, when DATABASE_URL is unset, starts a
// throwaway PostgreSQL of its own so it runs anywhere. It exports the
// pool's metrics as OTEL_METRICS_EXPORTER says (metrics.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/runpool/runpool/cloudsql" // RUNPOOL_CLOUDSQL_INSTANCE works on Cloud Run
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
	"github.com/runpool/runpool/serve"
)

func main() {
	if err := run(context.Background()); err != nil {
		slog.Error("service", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	if os.Getenv("DATABASE_URL") == "" {
		srv, stop, err := pgtest.StartEmbedded(pgtest.Options{})
		if err != nil {
			return err
		}
		defer stop()
		os.Setenv("DATABASE_URL", srv.URL())
		slog.Info("DATABASE_URL unset: started a throwaway PostgreSQL", "addr", srv.Addr())
	}

	meters, stopMetrics, err := setupMetrics(ctx)
	if err != nil {
		return err
	}
	defer stopMetrics(context.Background())

	cfg, err := pgxadapter.ConfigFromEnv()
	if err != nil {
		return err
	}
	cfg.Pool.MeterProvider = meters
	pool, err := pgxadapter.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 {
			http.Error(w, "ms must be a whole number of milliseconds", http.StatusBadRequest)
			return
		}
		if _, err := pool.Exec(r.Context(), "SELECT pg_sleep($1)", float64(ms)/1000); err != nil {
			writeDBError(w, err)
			return
		}
		fmt.Fprintln(w, "done")
	})

	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	slog.Info("listening", "port", port)
	// On SIGTERM: stop accepting, finish requests in flight, drain the
	// pool, all within the platform's grace period (RUNPOOL_DRAIN_TIMEOUT).
	return serve.HTTP(ctx, srv, 0, pool)
}

// writeDBError answers a failed query; a query the drain cancelled says so.
func writeDBError(w http.ResponseWriter, err error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "57014" {
		http.Error(w, "the service is shutting down: the query was cancelled", http.StatusServiceUnavailable)
		return
	}
	slog.Error("query", "err", err)
	http.Error(w, "database error", http.StatusInternalServerError)
}
