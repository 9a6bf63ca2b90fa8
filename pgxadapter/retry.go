package pgxadapter

import (
	"context"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
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

// refusedOnce reports whether a statement that failed with err on c,
// outside any transaction, was refused without running and may run once
// more on another connection: the server turned read-only under c (a
// failover: 25006 means nothing was written, and the pool has discarded
// the demoted server's connections, so the retry dials the name afresh),
// or the server had ended c's idle session before reading it (57P05).
// retried says the call already ran its statement again for this reason.
func (p *Pool) refusedOnce(ctx context.Context, c *runpool.Conn[*pconn], err error, retried *bool) bool {
	if *retried || ctx.Err() != nil || !c.Value().Refused(err) {
		return false
	}
	*retried = true
	return true
}
