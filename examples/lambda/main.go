// Command lambda is the runpool example an AWS Lambda user copies: a Go
// function (provided.al2023 runtime, aws-lambda-go) whose handler queries
// PostgreSQL through a runpool pool opened once per execution
// environment, and that drains the pool when Lambda shuts the environment
// down (package lambdadrain).
//
// The event is {"ms": N}: the handler runs one query that sleeps N ms and
// answers {"pid": P, "ms": N}, P being the server session that ran it.
// It reads DATABASE_URL and RUNPOOL_* from the environment; see README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	_ "github.com/runpool/runpool/rdsiam/awsdefault" // RUNPOOL_RDS_IAM_AUTH's default AWS configuration

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool/lambdadrain"
	"github.com/runpool/runpool/pgxadapter"
)

// Request is the invocation's event.
type Request struct {
	MS int `json:"ms"` // how long the query sleeps
}

// Response is the invocation's answer.
type Response struct {
	PID int32 `json:"pid"` // the server session that ran the query
	MS  int   `json:"ms"`
}

// answerMargin is kept from the invocation's deadline for the handler to
// answer with the error when the query runs out of time, rather than
// being cut off by Lambda's timeout.
const answerMargin = 100 * time.Millisecond

func main() {
	// Init phase: once per execution environment. The pool dials nothing
	// yet (unless its size must come from the server's limits); the first
	// invocation opens its connection.
	pool, err := pgxadapter.NewFromEnv(context.Background())
	if err != nil {
		slog.Error("lambda: opening the pool", "err", err)
		os.Exit(1)
	}
	// Before lambda.Start: Lambda accepts the extension only during Init.
	// A refusal is logged by lambdadrain; the function works without it.
	_, _ = lambdadrain.Start(pool)
	lambda.Start(handler(pool))
}

// handler runs one query under the invocation's deadline.
func handler(pool *pgxadapter.Pool) func(context.Context, Request) (Response, error) {
	return func(ctx context.Context, req Request) (Response, error) {
		if req.MS < 0 {
			return Response{}, errors.New("ms must not be negative")
		}
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-answerMargin))
			defer cancel()
		}
		var pid int32
		err := pool.QueryRow(ctx, "SELECT pg_backend_pid() FROM pg_sleep($1)", float64(req.MS)/1000).Scan(&pid)
		if err != nil {
			return Response{}, describe(err)
		}
		return Response{PID: pid, MS: req.MS}, nil
	}
}

// describe turns a query error into the invocation's error message.
func describe(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "57014" {
		return fmt.Errorf("the query was cancelled (deadline or shutdown): %w", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the query did not finish before the invocation's deadline: %w", err)
	}
	return fmt.Errorf("database error: %w", err)
}
