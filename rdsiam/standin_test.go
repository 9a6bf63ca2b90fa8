package rdsiam_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/rdsiam"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// rdsStandIn stands in for an RDS instance with IAM authentication: the
// shared test server with TLS (a certificate from a CA of its own), logins
// of other roles than the superuser over TLS only and by password (SCRAM),
// and the role's password rotated, by the Auth's issued hook, to each
// token signed, VALID UNTIL the token's end: a token refused by RDS
// (expired, or signed by credentials that expired) is refused here too.
type rdsStandIn struct {
	srv      *pgtest.Server
	rootCert string // the CA's certificate, for sslrootcert
	admin    *pgx.Conn
	mu       sync.Mutex // admin, valid
	rotate   atomic.Bool
	valid    map[string]time.Time // each token signed: the end of its validity
}

var (
	standInOnce sync.Once
	standIn     *rdsStandIn
	standInErr  error
)

// startRDSStandIn configures the shared server once per test binary.
func startRDSStandIn(t *testing.T) *rdsStandIn {
	t.Helper()
	srv := pgtest.Shared(t)
	if srv.DataDir == "" {
		t.Skip("the server of " + pgtest.EnvURL + " cannot be reconfigured for TLS and password logins")
	}
	standInOnce.Do(func() { standIn, standInErr = configure(srv) })
	if standInErr != nil {
		t.Fatal(standInErr)
	}
	return standIn
}

func configure(srv *pgtest.Server) (*rdsStandIn, error) {
	dir, err := os.MkdirTemp("", "rdsiam-ca-*")
	if err != nil {
		return nil, err
	}
	caPEM, certPEM, keyPEM, err := certificates()
	if err != nil {
		return nil, err
	}
	s := &rdsStandIn{srv: srv, rootCert: filepath.Join(dir, "root.crt"), valid: map[string]time.Time{}}
	if err := os.WriteFile(s.rootCert, caPEM, 0o644); err != nil {
		return nil, err
	}
	hba := "local all all trust\n" +
		"host all postgres 127.0.0.1/32 trust\n" +
		"hostssl all all 127.0.0.1/32 scram-sha-256\n" +
		"host all all 127.0.0.1/32 reject\n"
	var st syscall.Stat_t
	if err := syscall.Stat(srv.DataDir, &st); err != nil {
		return nil, err
	}
	for name, content := range map[string][]byte{"server.crt": certPEM, "server.key": keyPEM, "pg_hba.conf": []byte(hba)} {
		p := filepath.Join(srv.DataDir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			return nil, err
		}
		if err := os.Chown(p, int(st.Uid), int(st.Gid)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.admin, err = pgx.Connect(ctx, srv.URL())
	if err != nil {
		return nil, err
	}
	for _, q := range []string{"ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"} {
		if _, err := s.admin.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	// The reload is asynchronous: wait for TLS logins to work.
	for {
		var on string
		err := s.admin.QueryRow(ctx, "SHOW ssl").Scan(&on)
		if err == nil && on == "on" {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssl did not turn on: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dsn is the connection string of user with the given sslmode (and the
// stand-in's CA as sslrootcert).
func (s *rdsStandIn) dsn(user, sslmode string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=%s&sslrootcert=%s", user, s.srv.Addr(), user, sslmode, s.rootCert)
}

// setPassword sets user's password, valid until validUntil (zero: always).
func (s *rdsStandIn) setPassword(ctx context.Context, user, password string, validUntil time.Time) error {
	until := "infinity"
	if !validUntil.IsZero() {
		until = validUntil.UTC().Format(time.RFC3339Nano)
	}
	q := fmt.Sprintf("ALTER ROLE %s PASSWORD '%s' VALID UNTIL '%s'",
		pgx.Identifier{user}.Sanitize(), strings.ReplaceAll(password, "'", "''"), until)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.admin.Exec(ctx, q)
	return err
}

// issued is the Auth's hook: it rotates the role's password to each new
// token, unless rotation is off (a server that refuses every token).
func (s *rdsStandIn) issued(ctx context.Context, user, token string, validUntil time.Time) error {
	s.mu.Lock()
	s.valid[token] = validUntil
	s.mu.Unlock()
	if !s.rotate.Load() {
		return nil
	}
	return s.setPassword(ctx, user, token, validUntil)
}

// stale reports whether password is a token signed here whose validity
// has ended.
func (s *rdsStandIn) stale(password string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	end, ok := s.valid[password]
	return ok && !time.Now().Before(end)
}

// newAuth returns an Auth signing with creds, its tokens rotated into the
// stand-in.
func (s *rdsStandIn) newAuth(t *testing.T, creds aws.CredentialsProvider) *rdsiam.Auth {
	t.Helper()
	a, err := rdsiam.New(rdsiam.Options{Region: "eu-west-1", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	s.rotate.Store(true)
	rdsiam.SetIssued(a, s.issued)
	return a
}

// certificates returns a CA and a server certificate for 127.0.0.1 and
// localhost signed by it, PEM-encoded.
func certificates() (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rdsiam test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// roleCredentials stands in for the credentials of an IAM role session:
// static keys that expire after ttl, replaced by new ones when a caller
// asks within window of the end (as aws.CredentialsCache does with its
// ExpiryWindow).
type roleCredentials struct {
	ttl, window time.Duration
	mu          sync.Mutex
	cur         aws.Credentials
	sessions    int
}

func (r *roleCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.sessions == 0 || r.cur.CanExpire && !now.Before(r.cur.Expires.Add(-r.window)) {
		r.sessions++
		r.cur = aws.Credentials{
			AccessKeyID: fmt.Sprintf("ASIATESTSESSION%05d", r.sessions), SecretAccessKey: "secret-of-the-stand-in",
			SessionToken: fmt.Sprintf("session-token-%d", r.sessions), Source: "stand-in role",
			CanExpire: r.ttl > 0, Expires: now.Add(r.ttl),
		}
	}
	return r.cur, nil
}

// staticCredentials never expire.
func staticCredentials() aws.CredentialsProvider { return &roleCredentials{} }
