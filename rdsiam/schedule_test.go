package rdsiam_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/rdsiam"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixedCredentials returns keys expiring at exp (never, when zero).
type fixedCredentials struct{ exp time.Time }

func (f fixedCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", CanExpire: !f.exp.IsZero(), Expires: f.exp}, nil
}

// scheduled returns an Auth on clock whose signer numbers its tokens
// (after delay) and counts the signings in flight at once.
func scheduled(t *testing.T, clock *fakeClock, creds aws.CredentialsProvider, delay time.Duration) (*rdsiam.Auth, *atomic.Int64) {
	t.Helper()
	a, err := rdsiam.New(rdsiam.Options{Region: "us-east-1", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	rdsiam.SetClock(a, clock.now)
	var n, inFlight, most atomic.Int64
	rdsiam.SetSigner(a, func(ctx context.Context, endpoint, region, user string, creds aws.CredentialsProvider) (string, error) {
		if cur := inFlight.Add(1); cur > most.Load() {
			most.Store(cur)
		}
		defer inFlight.Add(-1)
		time.Sleep(delay)
		return fmt.Sprintf("%s/?Action=connect&DBUser=%s&X-Amz-Signature=token%03d", endpoint, user, n.Add(1)), nil
	})
	return a, &most
}

func password(t *testing.T, a *rdsiam.Auth) string {
	t.Helper()
	cc, err := pgx.ParseConfig("postgres://app@db.example:5432/app")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.BeforeConnect(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	return cc.Password
}

// Concurrent dials that find the token due share one signing: 32 dials,
// one token, one signing at a time.
func TestConcurrentDialsShareOneSigning(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, most := scheduled(t, clock, fixedCredentials{}, 20*time.Millisecond)
	for round := 1; round <= 2; round++ {
		var wg sync.WaitGroup
		got := make(chan string, 32)
		for range 32 {
			wg.Go(func() { got <- password(t, a) })
		}
		wg.Wait()
		close(got)
		want := fmt.Sprintf("token%03d", round)
		for p := range got {
			if !strings.HasSuffix(p, want) {
				t.Fatalf("round %d: password %q, want %s", round, p, want)
			}
		}
		if a.Signings() != int64(round) || most.Load() != 1 {
			t.Fatalf("round %d: %d signings, %d at once; want %d, 1", round, a.Signings(), most.Load(), round)
		}
		clock.add(rdsiam.RenewAfter)
	}
}

// The token is renewed at the earlier of RenewAfter after signing and
// CredentialsMargin before its credentials expire, and reused until then.
func TestRenewalAtTheEarlierOfTokenAndCredentials(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		creds   fixedCredentials
		renewAt time.Duration
	}{
		{"long-lived credentials", fixedCredentials{}, rdsiam.RenewAfter},
		{"credentials for an hour", fixedCredentials{start.Add(time.Hour)}, rdsiam.RenewAfter},
		{"credentials for 5 minutes", fixedCredentials{start.Add(5 * time.Minute)}, 5*time.Minute - rdsiam.CredentialsMargin},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{t: start}
			a, _ := scheduled(t, clock, c.creds, 0)
			first := password(t, a)
			clock.add(c.renewAt - time.Millisecond)
			if p := password(t, a); p != first || a.Signings() != 1 {
				t.Fatalf("just before %v: a new token (%d signings)", c.renewAt, a.Signings())
			}
			clock.add(time.Millisecond)
			if p := password(t, a); p == first || a.Signings() != 2 {
				t.Fatalf("at %v: the old token (%d signings)", c.renewAt, a.Signings())
			}
		})
	}
}

// A process frozen past its token's validity (Lambda between invocations)
// signs a new one on its first dial.
func TestFrozenPastValidityRenews(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, _ := scheduled(t, clock, fixedCredentials{}, 0)
	first := password(t, a)
	clock.add(20 * time.Minute)
	if password(t, a) == first {
		t.Fatal("the token signed 20 minutes ago was handed out")
	}
}

// Credentials already expired sign nothing: the error says so.
func TestExpiredCredentialsSignNothing(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, _ := scheduled(t, clock, fixedCredentials{clock.t.Add(-time.Second)}, 0)
	cc, _ := pgx.ParseConfig("postgres://app@db.example:5432/app")
	err := a.BeforeConnect(context.Background(), cc)
	if err == nil || !strings.Contains(err.Error(), "expired") || a.Signings() != 0 {
		t.Fatalf("got %v after %d signings, want an error saying the credentials expired", err, a.Signings())
	}
}

// A dial's context ends the wait for a signing, not the signing: the
// other dials waiting on it get the token.
func TestCancelledDialLeavesTheSigning(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, _ := scheduled(t, clock, fixedCredentials{}, 100*time.Millisecond)
	cc, _ := pgx.ParseConfig("postgres://app@db.example:5432/app")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := a.BeforeConnect(ctx, cc); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline", err)
	}
	if p := password(t, a); !strings.HasSuffix(p, "token001") || a.Signings() != 1 {
		t.Fatalf("password %q after %d signings, want token001 after 1", p, a.Signings())
	}
}
