// Package cloudsqltest is a local stand-in for Cloud SQL, enough for
// cloud.google.com/go/cloudsqlconn to connect without Google: the two
// Admin API calls the connector makes (connectSettings and
// generateEphemeralCert) and the instance's server-side proxy, a TLS
// endpoint with the instance's server certificate that accepts only client
// certificates it issued and forwards plaintext to a PostgreSQL server.
package cloudsqltest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/cloudsqlconn"
	"github.com/runpool/runpool/internal/cloudsqlwire"
	"golang.org/x/oauth2"
)

// The instance's addresses as the Admin API reports them; nothing listens
// there: Install redirects dials to the endpoint.
const (
	PublicIP  = "192.0.2.10"
	PrivateIP = "192.0.2.20"
	PSCName   = "abc123.test-region.sql-psc.goog"
	// Token is the OAuth2 access token the connector presents.
	Token = "cloudsqltest-token"
)

// Options configure an Instance.
type Options struct {
	// Project, Region and Name make the connection name; defaults
	// test-project, test-region, test-instance.
	Project, Region, Name string
	// Target is the PostgreSQL address the endpoint forwards to.
	Target string
	// CertLifetime is how long ephemeral client certificates are valid;
	// default 1h, as Cloud SQL's.
	CertLifetime time.Duration
	// ClockAhead sets the endpoint's clock ahead of the client's: a
	// certificate expires there ClockAhead before its NotAfter.
	ClockAhead time.Duration
}

// Instance is a running stand-in.
type Instance struct {
	opts     Options
	api      *httptest.Server
	ln       net.Listener
	serverCA []byte // PEM
	clientCA *x509.Certificate
	caKey    *rsa.PrivateKey
	tlsCfg   *tls.Config

	certs      atomic.Int64 // ephemeral certificates issued
	iamTokens  atomic.Int64 // of which carried an access token (IAM login)
	handshakes atomic.Int64 // client certificates accepted by the endpoint
	rejected   atomic.Int64 // handshakes that failed (expired or foreign cert)

	mu      sync.Mutex // guards conns, serials and dialled
	conns   map[net.Conn]struct{}
	serials map[string]bool // client certificate serials seen at handshakes
	dialled map[string]int  // addresses the connector dialled, by host
	wg      sync.WaitGroup
}

// Start runs the Admin API stand-in and the TLS endpoint on 127.0.0.1.
func Start(o Options) (*Instance, error) {
	if o.Project == "" {
		o.Project = "test-project"
	}
	if o.Region == "" {
		o.Region = "test-region"
	}
	if o.Name == "" {
		o.Name = "test-instance"
	}
	if o.CertLifetime == 0 {
		o.CertLifetime = time.Hour
	}
	i := &Instance{opts: o, conns: map[net.Conn]struct{}{}, serials: map[string]bool{}, dialled: map[string]int{}}
	if err := i.makeCerts(); err != nil {
		return nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", i.tlsCfg)
	if err != nil {
		return nil, err
	}
	i.ln = ln
	i.api = httptest.NewServer(http.HandlerFunc(i.serveAPI))
	i.wg.Add(1)
	go i.accept()
	return i, nil
}

// ConnName is the instance connection name, project:region:instance.
func (i *Instance) ConnName() string {
	return i.opts.Project + ":" + i.opts.Region + ":" + i.opts.Name
}

// APIURL is the Admin API's base URL.
func (i *Instance) APIURL() string { return i.api.URL + "/" }

// Endpoint is the TLS endpoint's address (the instance's port 3307).
func (i *Instance) Endpoint() string { return i.ln.Addr().String() }

// CertsIssued counts the ephemeral certificates issued so far.
func (i *Instance) CertsIssued() int { return int(i.certs.Load()) }

// IAMCerts counts the certificates requested with an access token for
// IAM database login.
func (i *Instance) IAMCerts() int { return int(i.iamTokens.Load()) }

// Handshakes counts TLS handshakes the endpoint accepted.
func (i *Instance) Handshakes() int { return int(i.handshakes.Load()) }

// Rejected counts TLS handshakes the endpoint refused.
func (i *Instance) Rejected() int { return int(i.rejected.Load()) }

// ClientCertsSeen counts the distinct client certificates presented.
func (i *Instance) ClientCertsSeen() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.serials)
}

// Dialled returns how many dials went to host (PublicIP, PrivateIP or
// PSCName).
func (i *Instance) Dialled(host string) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.dialled[host]
}

// Close stops the API and the endpoint and cuts every forwarded flow.
func (i *Instance) Close() {
	i.api.Close()
	_ = i.ln.Close()
	i.mu.Lock()
	for c := range i.conns {
		_ = c.Close()
	}
	i.conns = nil
	i.mu.Unlock()
	i.wg.Wait()
}

// DialerOptions are the connector options that point a Dialer at the
// stand-in: its API endpoint, a plain HTTP client, a static token and no
// export of metrics to Google.
func (i *Instance) DialerOptions(iamAuthN bool) []cloudsqlconn.Option {
	return DialerOptions(i.APIURL(), iamAuthN)
}

// DialerOptions is Instance.DialerOptions for an API at apiURL, for a
// child process that has only the URL.
func DialerOptions(apiURL string, iamAuthN bool) []cloudsqlconn.Option {
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: Token, Expiry: time.Now().Add(time.Hour)})
	// An HTTP client replaces the connector's authenticated one, so it
	// carries the token itself.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &oauth2.Transport{Source: ts}}
	opts := []cloudsqlconn.Option{
		cloudsqlconn.WithAdminAPIEndpoint(apiURL),
		cloudsqlconn.WithHTTPClient(hc),
		cloudsqlconn.WithBuiltInMetrics(false),
	}
	if iamAuthN {
		return append(opts, cloudsqlconn.WithIAMAuthNTokenSources(ts, ts))
	}
	return append(opts, cloudsqlconn.WithTokenSource(ts))
}

// Redirect maps the instance's advertised addresses (port 3307) to via;
// anything else is dialled as is.
func Redirect(via string, seen func(host string)) func(string) string {
	return func(addr string) string {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return addr
		}
		switch host {
		case PublicIP, PrivateIP, PSCName:
			if seen != nil {
				seen(host)
			}
			return via
		}
		return addr
	}
}

// Install points the process's Cloud SQL dialer at the instance, dialling
// via (the endpoint, or a proxy in front of it), until the returned
// function runs.
func (i *Instance) Install(via string) (restore func()) {
	old := cloudsqlwire.SetTesting(cloudsqlwire.Hooks{
		Options: i.DialerOptions,
		Redirect: Redirect(via, func(h string) {
			i.mu.Lock()
			i.dialled[h]++
			i.mu.Unlock()
		}),
	})
	return func() { cloudsqlwire.SetTesting(old) }
}

// Environment variables that carry the stand-in to a child process.
const (
	envAPI = "CLOUDSQLTEST_API"
	envVia = "CLOUDSQLTEST_VIA"
)

// ChildEnv is the environment a child process needs for InstallFromEnv.
func (i *Instance) ChildEnv(via string) []string {
	return []string{envAPI + "=" + i.APIURL(), envVia + "=" + via}
}

// InstallFromEnv installs the stand-in named by ChildEnv's variables, in
// a child process; false when they are unset.
func InstallFromEnv() bool {
	api, via := os.Getenv(envAPI), os.Getenv(envVia)
	if api == "" || via == "" {
		return false
	}
	cloudsqlwire.SetTesting(cloudsqlwire.Hooks{
		Options:  func(iam bool) []cloudsqlconn.Option { return DialerOptions(api, iam) },
		Redirect: Redirect(via, nil),
	})
	return true
}

// makeCerts creates the server CA (which also signs the endpoint's
// certificate, CN project:instance as Cloud SQL's are) and the CA that
// signs ephemeral client certificates.
func (i *Instance) makeCerts() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	i.caKey = key
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cloudsqltest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, ca, ca, &key.PublicKey, key)
	if err != nil {
		return err
	}
	i.clientCA, _ = x509.ParseCertificate(der)
	i.serverCA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})

	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: i.opts.Project + ":" + i.opts.Name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	sder, err := x509.CreateCertificate(rand.Reader, srv, i.clientCA, &key.PublicKey, key)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(i.clientCA)
	i.tlsCfg = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{sder}, PrivateKey: key}},
		ClientAuth:   tls.RequireAndVerifyClientCert, // checks expiry too
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	}
	if ahead := i.opts.ClockAhead; ahead != 0 {
		i.tlsCfg.Time = func() time.Time { return time.Now().Add(ahead) }
	}
	return nil
}

// serveAPI answers the two Admin API calls cloudsqlconn makes.
func (i *Instance) serveAPI(w http.ResponseWriter, r *http.Request) {
	base := "/sql/v1beta4/projects/" + i.opts.Project + "/instances/" + i.opts.Name
	if r.Header.Get("Authorization") != "Bearer "+Token {
		http.Error(w, `{"error":{"code":401,"message":"no token"}}`, http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == base+"/connectSettings":
		writeJSON(w, map[string]any{
			"kind":            "sql#connectSettings",
			"backendType":     "SECOND_GEN",
			"databaseVersion": "POSTGRES_15",
			"region":          i.opts.Region,
			"ipAddresses": []map[string]string{
				{"type": "PRIMARY", "ipAddress": PublicIP},
				{"type": "PRIVATE", "ipAddress": PrivateIP},
			},
			"pscEnabled":   true,
			"dnsNames":     []map[string]string{{"name": PSCName + ".", "connectionType": "PRIVATE_SERVICE_CONNECT", "dnsScope": "INSTANCE"}},
			"serverCaCert": map[string]string{"cert": string(i.serverCA)},
		})
	case r.Method == http.MethodPost && r.URL.Path == base+":generateEphemeralCert":
		var req struct {
			PublicKey   string `json:"public_key"`
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cert, exp, err := i.sign(req.PublicKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		i.certs.Add(1)
		if req.AccessToken == Token {
			i.iamTokens.Add(1)
		}
		writeJSON(w, map[string]any{"ephemeralCert": map[string]string{
			"kind": "sql#sslCert", "cert": cert, "expirationTime": exp.UTC().Format(time.RFC3339),
		}})
	default:
		http.Error(w, `{"error":{"code":404,"message":"not in the stand-in"}}`, http.StatusNotFound)
	}
}

var serial atomic.Int64

// sign issues a client certificate for the PEM public key, valid for
// CertLifetime.
func (i *Instance) sign(pubPEM string) (string, time.Time, error) {
	b, _ := pem.Decode([]byte(pubPEM))
	if b == nil {
		return "", time.Time{}, errors.New("public_key is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return "", time.Time{}, err
	}
	now := time.Now()
	exp := now.Add(i.opts.CertLifetime)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)),
		Subject:      pkix.Name{CommonName: "cloudsqltest client"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     exp,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.clientCA, pub, i.caKey)
	if err != nil {
		return "", time.Time{}, err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), exp, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// accept terminates TLS and forwards each accepted connection to Target,
// as Cloud SQL's server-side proxy does.
func (i *Instance) accept() {
	defer i.wg.Done()
	for {
		c, err := i.ln.Accept()
		if err != nil {
			return
		}
		i.wg.Add(1)
		go i.serve(c.(*tls.Conn))
	}
}

func (i *Instance) serve(c *tls.Conn) {
	defer i.wg.Done()
	if !i.track(c) {
		return
	}
	defer i.untrack(c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := c.HandshakeContext(ctx)
	cancel()
	if err != nil {
		i.rejected.Add(1)
		return
	}
	i.handshakes.Add(1)
	if pc := c.ConnectionState().PeerCertificates; len(pc) > 0 {
		i.mu.Lock()
		i.serials[pc[0].SerialNumber.String()] = true
		i.mu.Unlock()
	}
	up, err := net.DialTimeout("tcp", i.opts.Target, 5*time.Second)
	if err != nil {
		return
	}
	if !i.track(up) {
		return
	}
	defer i.untrack(up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// track registers c for Close; false (and c closed) when closing.
func (i *Instance) track(c net.Conn) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.conns == nil {
		_ = c.Close()
		return false
	}
	i.conns[c] = struct{}{}
	return true
}

func (i *Instance) untrack(c net.Conn) {
	_ = c.Close()
	i.mu.Lock()
	if i.conns != nil {
		delete(i.conns, c)
	}
	i.mu.Unlock()
}

// String names the instance for test logs.
func (i *Instance) String() string {
	return fmt.Sprintf("cloudsqltest %s (api %s, endpoint %s)", i.ConnName(), strings.TrimSuffix(i.APIURL(), "/"), i.Endpoint())
}
