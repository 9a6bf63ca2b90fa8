package serve_test

import (
	"context"
	"log"
	"net/http"
	"os"

	"github.com/runpool/runpool/pgxadapter"
	"github.com/runpool/runpool/serve"
)

// Serve HTTP until SIGTERM, then stop taking requests, finish those in
// flight and drain the pool, within the platform's grace period
// (RUNPOOL_DRAIN_TIMEOUT when set).
func ExampleHTTP() {
	ctx := context.Background()
	pool, err := pgxadapter.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var n int
		if err := pool.QueryRow(r.Context(), "select 1").Scan(&n); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	srv := &http.Server{Addr: ":" + os.Getenv("PORT"), Handler: mux}
	if err := serve.HTTP(ctx, srv, 0, pool); err != nil {
		log.Fatal(err)
	}
}
