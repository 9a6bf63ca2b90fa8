package pgxadapter

import (
	"context"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxAttempts bounds how often one call runs its statement: a failure
// that pgx marks safe to retry (no byte of the statement reached the
// server: the connection broke before it was sent) is retried on another
// connection. Nothing that may have run on the server is ever retried, so
// a write is never doubled.
const maxAttempts = 3

func retryable(ctx context.Context, err error, attempt int) bool {
	return attempt+1 < maxAttempts && ctx.Err() == nil && pgconn.SafeToRetry(err)
}
