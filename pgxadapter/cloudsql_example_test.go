package pgxadapter_test

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "github.com/runpool/runpool/cloudsql" // links the Cloud SQL connector in
	"github.com/runpool/runpool/pgxadapter"
)

// Cloud Run with Cloud SQL, from the environment alone:
//
//	RUNPOOL_CLOUDSQL_INSTANCE=my-project:europe-west1:main
//	PGUSER=app PGPASSWORD=... PGDATABASE=app
//	RUNPOOL_BUDGET=80 RUNPOOL_MAX_INSTANCES=10
//
// Connections go through the Cloud SQL Go connector (no host, port or
// sslmode needed); on Cloud Run its certificate is refreshed lazily. Drain
// on SIGTERM: the connector's Dialer is closed after the pool drained.
func ExampleCloudSQL() {
	ctx := context.Background()
	pool, err := pgxadapter.NewFromEnv(ctx)
	if err != nil {
		log.Fatal(err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		_, _ = pool.Shutdown(ctx)
		os.Exit(0)
	}()

	if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
		log.Fatal(err)
	}
}

// The same in code, with IAM database authentication over private IP: the
// user is the service account without ".gserviceaccount.com", and no
// password is set.
func ExampleCloudSQL_iam() {
	cfg, err := pgxadapter.ParseConfig("user=app-sa@my-project.iam dbname=app")
	if err != nil {
		log.Fatal(err)
	}
	cfg.CloudSQL = &pgxadapter.CloudSQL{
		Instance:    "my-project:europe-west1:main",
		IAMAuthN:    true,
		IPType:      "private",
		LazyRefresh: true, // the CPU is throttled between requests
	}
	pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
}
