package sqladapter_test

import (
	"context"
	"log"
	"time"

	_ "github.com/runpool/runpool/cloudsql" // links the Cloud SQL connector in
	"github.com/runpool/runpool/sqladapter"
)

// database/sql on Cloud SQL, from the environment alone: set
// RUNPOOL_CLOUDSQL_INSTANCE=project:region:instance and PGUSER,
// PGPASSWORD, PGDATABASE (or RUNPOOL_CLOUDSQL_IAM_AUTHN=true and no
// password). Shutdown drains the pool, then closes the connector's Dialer.
func ExampleCloudSQL() {
	ctx := context.Background()
	db, err := sqladapter.OpenFromEnv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		_, _ = sqladapter.Shutdown(ctx, db)
	}()
	if _, err := db.ExecContext(ctx, "SELECT 1"); err != nil {
		log.Fatal(err)
	}
}
