package lambdadrain_test

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/runpool/runpool/lambdadrain"
	"github.com/runpool/runpool/pgxadapter"
)

// A function's main: the pool opened once per execution environment, the
// drain registered during Init, then the runtime loop.
func Example() {
	pool, err := pgxadapter.NewFromEnv(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	// Before lambda.Start. An error is logged by Start; the function still
	// serves, but Lambda will send no SIGTERM.
	_, _ = lambdadrain.Start(pool)
	lambda.Start(func(ctx context.Context) (int32, error) {
		var pid int32
		err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
		return pid, err
	})
}
