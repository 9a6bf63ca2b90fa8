package rdsiam

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// The external tests shorten the schedule, stop the clock and stand in
// for RDS through these.

func SetSchedule(a *Auth, lifetime, renewAfter, margin time.Duration) {
	a.lifetime, a.renewAfter, a.margin = lifetime, renewAfter, margin
}

func SetClock(a *Auth, now func() time.Time) { a.now = now }

func SetSigner(a *Auth, sign func(ctx context.Context, endpoint, region, user string, creds aws.CredentialsProvider) (string, error)) {
	a.sign = sign
}

func SetIssued(a *Auth, issued func(ctx context.Context, user, token string, validUntil time.Time) error) {
	a.issued = issued
}
