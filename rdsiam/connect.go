package rdsiam

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// BeforeConnect sets cc.Password to the token for cc's host, port and
// user: the per-dial hook of pgxpool.Config and pgxadapter.Config. A dial
// made so is not retried when the server refuses the token (the next dial
// gets a new one only once this one is due); [Connect] retries.
func (a *Auth) BeforeConnect(ctx context.Context, cc *pgx.ConnConfig) error {
	t, err := a.token(ctx, cc.Host, cc.Port, cc.User)
	if err != nil {
		return err
	}
	cc.Password = t.value
	return nil
}

// Connect dials with connect, cc's password set to the token for its host,
// port and user. When the server refuses the token (SQLSTATE 28000 or
// 28P01, "PAM authentication failed"), it renews the token once, with
// credentials retrieved afresh when they come from an aws.CredentialsCache
// (the role session behind them may have ended), and dials once more,
// even when the new token is the old one (signed in the same second with
// the same credentials): RDS also refuses IAM logins under bursts. A nil
// a dials with cc as it is. The token is signed for cc's first host: a
// connection string naming several hosts gets a token only the first
// accepts.
//
// Its errors do not hold the token: their text is connect's with any
// trace of it removed, and they unwrap to what pgx's *pgconn.ConnectError
// wraps (the server's *pgconn.PgError, the network error), never to the
// ConnectError itself, whose Config holds the password.
func Connect[C any](ctx context.Context, a *Auth, cc *pgx.ConnConfig, connect func(context.Context, *pgx.ConnConfig) (C, error)) (C, error) {
	if a == nil {
		return connect(ctx, cc)
	}
	var zero C
	t, err := a.token(ctx, cc.Host, cc.Port, cc.User)
	if err != nil {
		return zero, err
	}
	cc.Password = t.value
	c, err := connect(ctx, cc)
	if err == nil || !AuthFailure(err) {
		return c, redact(err, t.value)
	}
	a.refused(cc.Host, cc.Port, cc.User, t)
	t2, err2 := a.token(ctx, cc.Host, cc.Port, cc.User)
	if err2 != nil {
		return zero, redact(err, t.value)
	}
	cc.Password = t2.value
	c, err = connect(ctx, cc)
	return c, redact(redact(err, t2.value), t.value)
}

// AuthFailure reports whether err is the server refusing the login: SQLSTATE
// 28000 (invalid authorization, RDS's "PAM authentication failed") or
// 28P01 (invalid password).
func AuthFailure(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "28000" || pe.Code == "28P01"
	}
	return err != nil && strings.Contains(err.Error(), "PAM authentication failed")
}

// signature matches a presigned URL's signature wherever a message may
// quote part of a token.
var signature = regexp.MustCompile(`(?i)(X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=[^&\s"'` + "`" + `]*`)

// redact returns err with tok and any signature taken out of its text;
// nil for nil.
func redact(err error, tok string) error {
	if err == nil {
		return nil
	}
	if d, ok := err.(*dialError); ok {
		d.msg = scrub(d.msg, tok)
		return d
	}
	cause := err
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		cause = ce.Unwrap()
	}
	return &dialError{msg: scrub(err.Error(), tok), cause: cause}
}

func scrub(msg, tok string) string {
	if tok != "" {
		msg = strings.ReplaceAll(msg, tok, "(IAM token)")
	}
	return signature.ReplaceAllString(msg, "$1=(redacted)")
}

// dialError is a failed dial's error without the token (see Connect).
type dialError struct {
	msg   string
	cause error
}

func (e *dialError) Error() string { return e.msg }
func (e *dialError) Unwrap() error { return e.cause }
