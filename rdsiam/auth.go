package rdsiam

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
)

// The token's schedule. RDS accepts a token for TokenLifetime after it was
// signed; it is renewed after RenewAfter, leaving the rest for dials that
// took it just before, and CredentialsMargin before the credentials that
// signed it expire (the token stops working with them).
const (
	TokenLifetime     = 15 * time.Minute
	RenewAfter        = 10 * time.Minute
	CredentialsMargin = time.Minute
)

// signTimeout bounds one signing, credentials retrieval included: it runs
// for every dial waiting on it, detached from the context of the dial that
// started it.
const signTimeout = 30 * time.Second

// Options configures an Auth.
type Options struct {
	// Region is the AWS region of the database, e.g. "eu-west-1".
	Region string
	// Credentials sign the tokens. The process's default credential chain
	// (environment, shared files, web identity, container or instance
	// role) is [FromEnv]'s choice; New requires a provider.
	Credentials aws.CredentialsProvider
}

// Auth hands out IAM authentication tokens, one per endpoint and user,
// reused while valid and renewed before it or its credentials expire. It
// is safe for concurrent use; every pool of a process may share one.
type Auth struct {
	region string
	creds  aws.CredentialsProvider

	// The schedule and the clock, fixed by New; tests shorten them.
	now        func() time.Time
	lifetime   time.Duration
	renewAfter time.Duration
	margin     time.Duration
	// sign builds a token (auth.BuildAuthToken).
	sign func(ctx context.Context, endpoint, region, user string, creds aws.CredentialsProvider) (string, error)
	// issued, when set, runs after each signing, before the token is
	// handed out: the tests' stand-in for RDS learns the token there.
	issued func(ctx context.Context, user, token string, validUntil time.Time) error

	signings atomic.Int64

	mu      sync.Mutex
	entries map[key]*entry
}

type key struct{ endpoint, user string }

// entry is one endpoint and user's token and the renewal in flight.
type entry struct {
	cur    *token  // nil until the first signing, and after a refusal
	flight *flight // the renewal every dial that finds cur due waits on
}

// token is one signed token and its schedule, in wall-clock time: a
// process frozen (Lambda) or a machine suspended must find its token due
// by the clock RDS checks it against, which monotonic time is not.
type token struct {
	value      string
	renewAt    time.Time
	validUntil time.Time
}

type flight struct {
	done chan struct{}
	tok  *token
	err  error
}

// New returns an Auth signing with o.Credentials for o.Region. It does not
// retrieve the credentials: [FromEnv] checks at start-up that they can be.
func New(o Options) (*Auth, error) {
	if o.Region == "" {
		return nil, errors.New("rdsiam: no AWS region (set AWS_REGION)")
	}
	if o.Credentials == nil {
		return nil, errors.New("rdsiam: no AWS credentials provider")
	}
	return &Auth{
		region: o.Region, creds: o.Credentials,
		now: time.Now, lifetime: TokenLifetime, renewAfter: RenewAfter, margin: CredentialsMargin,
		sign: buildAuthToken, entries: map[key]*entry{},
	}, nil
}

// Region returns the AWS region the tokens are signed for.
func (a *Auth) Region() string { return a.region }

// Signings returns how many tokens a has signed.
func (a *Auth) Signings() int64 { return a.signings.Load() }

// token returns a valid token for host:port and user: the current one
// unless it is due, else the one a renewal (started here, or by another
// dial) signs.
func (a *Auth) token(ctx context.Context, host string, port uint16, user string) (*token, error) {
	k := key{net.JoinHostPort(host, strconv.Itoa(int(port))), user}
	for range 2 {
		a.mu.Lock()
		e := a.entries[k]
		if e == nil {
			e = &entry{}
			a.entries[k] = e
		}
		if t := e.cur; t != nil && a.wall().Before(t.renewAt) {
			a.mu.Unlock()
			return t, nil
		}
		f := e.flight
		if f == nil {
			f = &flight{done: make(chan struct{})}
			e.flight = f
			go a.renew(context.WithoutCancel(ctx), k, e, f)
		}
		a.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("rdsiam: waiting for an IAM token: %w", context.Cause(ctx))
		}
		if f.err != nil {
			return nil, f.err
		}
		// A token signed for this dial is sent even when its schedule
		// says renew (credentials about to expire): never one past its
		// validity.
		if a.wall().Before(f.tok.validUntil) {
			return f.tok, nil
		}
	}
	return nil, errors.New("rdsiam: the AWS credentials expire before a token signed with them can be used")
}

// renew signs a token for k and hands it to every dial waiting on f.
func (a *Auth) renew(ctx context.Context, k key, e *entry, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, signTimeout)
	defer cancel()
	tok, err := a.signFor(ctx, k)
	a.mu.Lock()
	if err == nil {
		e.cur = tok
	}
	e.flight = nil
	f.tok, f.err = tok, err
	a.mu.Unlock()
	close(f.done)
}

// signFor retrieves the credentials, signs a token with them and works
// out its schedule.
func (a *Auth) signFor(ctx context.Context, k key) (*token, error) {
	creds, err := a.creds.Retrieve(ctx)
	if err != nil {
		return nil, credentialsError(err)
	}
	issued := a.wall()
	if creds.CanExpire && !issued.Before(creds.Expires) {
		return nil, fmt.Errorf("rdsiam: the AWS credentials expired at %s", creds.Expires.UTC().Format(time.RFC3339))
	}
	fixed := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil })
	value, err := a.sign(ctx, k.endpoint, a.region, k.user, fixed)
	if err != nil {
		// The signer's errors describe the endpoint or the credentials,
		// never a token (there is none yet).
		return nil, fmt.Errorf("rdsiam: signing an IAM token for %s: %w", k.endpoint, err)
	}
	a.signings.Add(1)
	t := &token{value: value, validUntil: issued.Add(a.lifetime), renewAt: issued.Add(a.renewAfter)}
	if creds.CanExpire {
		exp := creds.Expires.Round(0)
		t.validUntil = earliest(t.validUntil, exp)
		t.renewAt = earliest(t.renewAt, exp.Add(-a.margin))
	}
	if t.renewAt.Before(issued) {
		t.renewAt = issued // for this dial only: the next one signs again
	}
	if a.issued != nil {
		if err := a.issued(ctx, k.user, value, t.validUntil); err != nil {
			return nil, fmt.Errorf("rdsiam: %w", err)
		}
	}
	return t, nil
}

// refused marks t refused by the server: the next dial renews it. A
// refusal of an older token, reported after the renewal, changes nothing,
// so a burst of refused dials renews once.
func (a *Auth) refused(host string, port uint16, user string, t *token) {
	k := key{net.JoinHostPort(host, strconv.Itoa(int(port))), user}
	a.mu.Lock()
	renew := false
	if e := a.entries[k]; e != nil && e.cur == t {
		e.cur = nil
		renew = true
	}
	a.mu.Unlock()
	if c, ok := a.creds.(*aws.CredentialsCache); ok && renew {
		c.Invalidate()
	}
}

// wall is the time of day without the monotonic reading (see token).
func (a *Auth) wall() time.Time { return a.now().Round(0) }

// buildAuthToken is the official signer's (SigV4 presigned, 15 minutes).
func buildAuthToken(ctx context.Context, endpoint, region, user string, creds aws.CredentialsProvider) (string, error) {
	return auth.BuildAuthToken(ctx, endpoint, region, user, creds)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
