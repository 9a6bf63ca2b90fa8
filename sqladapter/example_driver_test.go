package sqladapter_test

import (
	"context"
	"database/sql"
	"log"
	"net/http"
	"os"

	"github.com/runpool/runpool/serve"
	"github.com/runpool/runpool/sqladapter"
)

// Tools that take only a driver name and a DSN (goose, golang-migrate,
// sqlx) open a runpool pool through the registered driver. Every
// sql.Open of one DSN shares one pool.
func ExampleDriver() {
	db, err := sql.Open(sqladapter.DriverName, os.Getenv("DATABASE_URL")) // "runpool"
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := db.PingContext(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// Serve HTTP until SIGTERM, then drain the *sql.DB within the platform's
// grace period (RUNPOOL_DRAIN_TIMEOUT).
func ExampleDrainer() {
	ctx := context.Background()
	db, err := sqladapter.OpenFromEnv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: ":" + os.Getenv("PORT")}
	if err := serve.HTTP(ctx, srv, 0, sqladapter.Drainer(db)); err != nil {
		log.Fatal(err)
	}
}
