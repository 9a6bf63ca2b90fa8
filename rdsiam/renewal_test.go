package rdsiam_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool/rdsiam"
)

// counter counts the dials that reached the server, retries included,
// and those that carried a token past its validity.
type counter struct {
	s        *rdsStandIn
	n, stale atomic.Int64
}

func (c *counter) connect(ctx context.Context, cc *pgx.ConnConfig) (*pgx.Conn, error) {
	c.n.Add(1)
	if c.s != nil && c.s.stale(cc.Password) {
		c.stale.Add(1)
	}
	return pgx.ConnectConfig(ctx, cc)
}

// dial opens and closes one connection as user through rdsiam.Connect.
func (s *rdsStandIn) dial(t *testing.T, a *rdsiam.Auth, user string, c *counter) error {
	t.Helper()
	cc, err := pgx.ParseConfig(s.dsn(user, "verify-full"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := rdsiam.Connect(ctx, a, cc, c.connect)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// The stand-in refuses a token past its validity, as RDS does: what makes
// the tests below evidence that no such token reaches the server.
func TestStandInRefusesATokenPastItsValidity(t *testing.T) {
	s := startRDSStandIn(t)
	user := s.srv.CreateRole(t, -1)
	a := s.newAuth(t, staticCredentials())
	rdsiam.SetSchedule(a, 1500*time.Millisecond, time.Second, 0)
	cc, err := pgx.ParseConfig(s.dsn(user, "verify-full"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.BeforeConnect(ctx, cc); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatalf("a fresh token: %v", err)
	}
	conn.Close(ctx)
	time.Sleep(1700 * time.Millisecond)
	_, err = pgx.ConnectConfig(ctx, cc) // the same token, now past its validity
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("a stale token: %v, want 28P01 (password authentication failed)", err)
	}
}

// Dials spread over several token lifetimes all log in at the first
// attempt: each token was renewed before its end, and reused until then.
func TestTokenRenewedBeforeItExpires(t *testing.T) {
	s := startRDSStandIn(t)
	user := s.srv.CreateRole(t, -1)
	a := s.newAuth(t, staticCredentials())
	// Two seconds of validity left at renewal: room for a dial under load.
	rdsiam.SetSchedule(a, 3*time.Second, time.Second, 0)
	c := counter{s: s}
	dials := 0
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); dials++ {
		if err := s.dial(t, a, user, &c); err != nil {
			t.Fatalf("dial %d: %v", dials, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c.n.Load() != int64(dials) || c.stale.Load() != 0 {
		t.Errorf("%d attempts for %d dials, %d with a token past its validity", c.n.Load(), dials, c.stale.Load())
	}
	if n := a.Signings(); n < 3 || n > 5 {
		t.Errorf("%d signings over 3.5 s of tokens renewed after 1 s, want 3 to 5", n)
	}
	t.Logf("%d dials, %d signings", dials, a.Signings())
}

// Credentials that end before the token's 15 minutes (a role session)
// have the token renewed before they end: the stand-in's VALID UNTIL is
// the credentials' end, so a token sent later would be refused.
func TestTokenRenewedBeforeItsCredentialsExpire(t *testing.T) {
	s := startRDSStandIn(t)
	user := s.srv.CreateRole(t, -1)
	creds := &roleCredentials{ttl: 3 * time.Second, window: 2 * time.Second}
	a := s.newAuth(t, creds)
	// Renewal 1.5 s before the credentials end: room for a dial under load.
	rdsiam.SetSchedule(a, rdsiam.TokenLifetime, rdsiam.RenewAfter, 1500*time.Millisecond)
	c := counter{s: s}
	dials := 0
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); dials++ {
		if err := s.dial(t, a, user, &c); err != nil {
			t.Fatalf("dial %d: %v", dials, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c.n.Load() != int64(dials) || c.stale.Load() != 0 {
		t.Errorf("%d attempts for %d dials, %d with a token past its validity", c.n.Load(), dials, c.stale.Load())
	}
	creds.mu.Lock()
	sessions := creds.sessions
	creds.mu.Unlock()
	if sessions < 3 || a.Signings() < int64(sessions) || a.Signings() > int64(2*sessions) {
		t.Errorf("%d signings for %d credential sessions", a.Signings(), sessions)
	}
	t.Logf("%d dials, %d signings, %d credential sessions", dials, a.Signings(), sessions)
}

// A token the server refuses (here: revoked by setting another password)
// is renewed once and the dial made once more; when the new one is
// refused too, the dial fails after those two attempts.
func TestRefusedTokenRenewedOnceAndDialRetried(t *testing.T) {
	s := startRDSStandIn(t)
	user := s.srv.CreateRole(t, -1)
	a := s.newAuth(t, staticCredentials())
	var c counter
	if err := s.dial(t, a, user, &c); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.setPassword(ctx, user, "revoked", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.dial(t, a, user, &c); err != nil {
		t.Fatalf("after a refusal: %v", err)
	}
	if c.n.Load() != 3 || a.Signings() != 2 {
		t.Fatalf("%d attempts and %d signings, want 3 and 2", c.n.Load(), a.Signings())
	}

	// A server refusing every token: one renewal, two attempts, and the
	// server's refusal returned.
	if err := s.setPassword(ctx, user, "revoked", time.Time{}); err != nil {
		t.Fatal(err)
	}
	s.rotate.Store(false)
	err := s.dial(t, a, user, &c)
	if !rdsiam.AuthFailure(err) {
		t.Fatalf("got %v, want the server's authentication failure", err)
	}
	if c.n.Load() != 5 || a.Signings() != 3 {
		t.Fatalf("%d attempts and %d signings, want 5 and 3", c.n.Load(), a.Signings())
	}
}

// A burst of dials refused with the same token renews it once.
func TestBurstOfRefusalsRenewsOnce(t *testing.T) {
	s := startRDSStandIn(t)
	user := s.srv.CreateRole(t, -1)
	a := s.newAuth(t, staticCredentials())
	var c counter
	if err := s.dial(t, a, user, &c); err != nil {
		t.Fatal(err)
	}
	if err := s.setPassword(context.Background(), user, "revoked", time.Time{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- s.dial(t, a, user, &c) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if a.Signings() != 2 {
		t.Fatalf("%d signings, want 2 (one renewal for the burst)", a.Signings())
	}
}

// tokenLeaks reports whether text holds tok or a piece of its signature.
func tokenLeaks(text, tok string) bool {
	if tok == "" {
		return false
	}
	if strings.Contains(text, tok) {
		return true
	}
	_, sig, ok := strings.Cut(tok, "X-Amz-Signature=")
	return ok && len(sig) >= 16 && strings.Contains(text, sig[:16])
}
