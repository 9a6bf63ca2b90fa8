package sqladapter_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/sqladapter"
)

// Everything from the environment: DATABASE_URL (or PG*) and RUNPOOL_*.
// The *sql.DB is used as any other.
func ExampleOpenFromEnv() {
	ctx := context.Background()
	db, err := sqladapter.OpenFromEnv(ctx)
	if err != nil {
		log.Fatal(err) // names the bad variable; never shows the password
	}
	defer db.Close() // returns at once; drain with sqladapter.Shutdown (ExampleShutdown)

	var now time.Time
	if err := db.QueryRowContext(ctx, "SELECT now()").Scan(&now); err != nil {
		log.Fatal(err)
	}
	fmt.Println(now)
}

// Settings in code: parse the connection string, then set runpool's fields.
func ExampleOpen() {
	cfg, err := sqladapter.ParseConfig("postgres://app@db.internal/app")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Pool.Budget = 90       // connections for the whole service
	cfg.Pool.MaxInstances = 10 // the platform's max instance count
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET statement_timeout = '5s'")
		return err
	}
	db, err := sqladapter.Open(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
}

// Build the *sql.DB yourself from a Connector, for code that wants a
// driver.Connector. OpenDB lets database/sql keep enough idle shells (see
// DriverConn); the server connections stay runpool's either way.
func ExampleOpenDB() {
	cfg, err := sqladapter.ConfigFromEnv()
	if err != nil {
		log.Fatal(err)
	}
	c, err := sqladapter.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	db := sqladapter.OpenDB(c)
	defer db.Close()
	if err := db.PingContext(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// Drain on SIGTERM: finish in-flight queries, close idle connections at
// once, and cancel what still runs just before the grace period ends.
func ExampleShutdown() {
	db, err := sqladapter.OpenFromEnv(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go handleRequests(db)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second) // Cloud Run gives 10 s
	defer cancel()
	rep, err := sqladapter.Shutdown(ctx, db)
	log.Printf("drained: %+v, err %v", rep, err)
}

// The pool's counters, next to database/sql's own db.Stats() (which
// counts database/sql's shells, not server connections).
func ExampleStat() {
	db, err := sqladapter.OpenFromEnv(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	st := sqladapter.Stat(db)
	fmt.Println("idle", st.IdleConns(), "in use", st.AcquiredConns(),
		"stale discarded", st.StaleDiscardCount(), "freezes", st.FreezeCount(),
		"orphaned sessions ended", st.OrphansEndedCount())
}

// Reaching pgx from a sql.Conn: assert interface{ Conn() *pgx.Conn }, which
// sqladapter's driver connection and pgx's *stdlib.Conn both satisfy.
func ExampleDriverConn_Conn() {
	ctx := context.Background()
	db, err := sqladapter.OpenFromEnv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.Raw(func(dc any) error {
		pc := dc.(interface{ Conn() *pgx.Conn }).Conn()
		_, err := pc.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"name"},
			pgx.CopyFromRows([][]any{{"a"}, {"b"}}))
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}

func handleRequests(*sql.DB) {}
