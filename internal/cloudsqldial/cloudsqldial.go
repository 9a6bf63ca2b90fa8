// Package cloudsqldial wires cloud.google.com/go/cloudsqlconn into pgx's
// connection settings, the same way for both adapters: one Dialer per
// process, shared by every pool and closed after the last of them drained.
package cloudsqldial

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"cloud.google.com/go/cloudsqlconn"
	"cloud.google.com/go/cloudsqlconn/instance"
	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
)

// Environment variables read by FromEnv. They are not runpool.Config
// fields, so docs/configuration.md's table of variables lists them by hand.
const (
	EnvInstance    = "RUNPOOL_CLOUDSQL_INSTANCE"
	EnvIAMAuthN    = "RUNPOOL_CLOUDSQL_IAM_AUTHN"
	EnvIPType      = "RUNPOOL_CLOUDSQL_IP_TYPE"
	EnvLazyRefresh = "RUNPOOL_CLOUDSQL_LAZY_REFRESH"
)

// Settings says how to reach one Cloud SQL instance.
type Settings struct {
	Instance    string // project:region:instance
	IAMAuthN    bool   // automatic IAM database authentication
	IPType      string // "public" (default), "private" or "psc"
	LazyRefresh bool   // fetch certificates on dial, not in the background
}

// FromEnv reads the RUNPOOL_CLOUDSQL_* variables; nil when
// RUNPOOL_CLOUDSQL_INSTANCE is unset. Lazy refresh defaults to on where
// the platform throttles or freezes idle instances: there a background
// refresh may not get the CPU before the certificate expires.
func FromEnv(lookup func(string) (string, bool)) (*Settings, error) {
	name, _ := lookup(EnvInstance)
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, nil
	}
	s := &Settings{Instance: name, LazyRefresh: runpool.DetectPlatform(lookup).FreezesWhenIdle}
	if v, ok := lookup(EnvIAMAuthN); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, &runpool.ConfigError{Setting: EnvIAMAuthN, Value: v, Problem: "must be true or false"}
		}
		s.IAMAuthN = b
	}
	if v, ok := lookup(EnvLazyRefresh); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, &runpool.ConfigError{Setting: EnvLazyRefresh, Value: v, Problem: "must be true or false"}
		}
		s.LazyRefresh = b
	}
	if v, ok := lookup(EnvIPType); ok {
		s.IPType = strings.ToLower(strings.TrimSpace(v))
	}
	if err := s.Validate(EnvInstance, EnvIPType); err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks the instance name and the IP type; the errors name
// instSetting or ipSetting.
func (s *Settings) Validate(instSetting, ipSetting string) error {
	if _, err := instance.ParseConnName(s.Instance); err != nil {
		return &runpool.ConfigError{Setting: instSetting, Value: s.Instance, Problem: "must be project:region:instance"}
	}
	switch s.IPType {
	case "", "public", "private", "psc":
	default:
		return &runpool.ConfigError{Setting: ipSetting, Value: s.IPType, Problem: "must be public, private or psc"}
	}
	return nil
}

func (s *Settings) dialOptions() []cloudsqlconn.DialOption {
	opts := []cloudsqlconn.DialOption{cloudsqlconn.WithDialIAMAuthN(s.IAMAuthN)}
	switch s.IPType {
	case "private":
		opts = append(opts, cloudsqlconn.WithPrivateIP())
	case "psc":
		opts = append(opts, cloudsqlconn.WithPSC())
	default:
		opts = append(opts, cloudsqlconn.WithPublicIP())
	}
	return opts
}

// dial opens one connection to the instance: the TCP socket with
// runpool's dialer (keepalive 15 s idle, 5 s interval, TCP_USER_TIMEOUT),
// TLS and the rest by cloudsqlconn. cloudsqlconn resets keepalive idle
// and interval to its own 30 s on any *net.TCPConn its dial function
// returns, so it gets the socket behind a wrapper. The connection
// returned offers the socket beneath the TLS (syscall.Conn), so that the
// pool can see, without a round trip, that the server ended the session.
func dial(ctx context.Context, d *cloudsqlconn.Dialer, name string, opts []cloudsqlconn.DialOption, nd *net.Dialer) (net.Conn, error) {
	var sock syscall.Conn
	tcp := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if r := testHooks().Redirect; r != nil {
			addr = r(addr)
		}
		c, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sock, _ = c.(syscall.Conn)
		return keptConn{c}, nil
	}
	opts = append(opts[:len(opts):len(opts)], cloudsqlconn.WithOneOffDialFunc(tcp))
	c, err := d.Dial(ctx, name, opts...)
	if err != nil || sock == nil {
		return c, err
	}
	return &socketConn{Conn: c, sock: sock}, nil
}

// keptConn is a TCP connection whose socket options runpool owns.
type keptConn struct{ net.Conn }

// socketConn is cloudsqlconn's connection with the TCP socket beneath.
type socketConn struct {
	net.Conn
	sock syscall.Conn
}

// SyscallConn reaches the TCP socket beneath the TLS.
func (c *socketConn) SyscallConn() (syscall.RawConn, error) { return c.sock.SyscallConn() }

// Hooks let this module's tests point the Dialer at a local stand-in for
// Cloud SQL (internal/testbed/cloudsqltest). Production code never sets them.
type Hooks struct {
	// Options are added when the process-wide Dialer is created.
	Options func(iamAuthN bool) []cloudsqlconn.Option
	// Redirect rewrites the address cloudsqlconn dials (the instance's
	// IP, port 3307).
	Redirect func(addr string) string
}

var (
	hooksMu sync.Mutex // guards hooks: a dial left over from one test may run while the next installs its own
	hooks   Hooks
)

// SetTesting installs h and returns the hooks it replaced.
func SetTesting(h Hooks) (old Hooks) {
	hooksMu.Lock()
	defer hooksMu.Unlock()
	old, hooks = hooks, h
	return old
}

func testHooks() Hooks {
	hooksMu.Lock()
	defer hooksMu.Unlock()
	return hooks
}

// The process-wide Dialer, shared by every pool and closed when the last
// one releases it.
var (
	mu     sync.Mutex // guards dialer and users
	dialer *cloudsqlconn.Dialer
	users  int
)

// Handle is one pool's share of the process-wide Dialer.
type Handle struct {
	once sync.Once
}

// Release gives the share back; the last release closes the Dialer, which
// force-closes every socket it opened, so call it after the pool drained.
// It is safe to call more than once and on a nil Handle.
func (h *Handle) Release() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		mu.Lock()
		defer mu.Unlock()
		users--
		if users == 0 && dialer != nil {
			_ = dialer.Close()
			dialer = nil
		}
	})
}

// acquire returns the process-wide Dialer, creating it with s's
// process-level choices (lazy refresh, IAM) when no pool holds it.
func acquire(ctx context.Context, s *Settings) (*cloudsqlconn.Dialer, *Handle, error) {
	mu.Lock()
	defer mu.Unlock()
	if dialer == nil {
		var opts []cloudsqlconn.Option
		if s.LazyRefresh {
			opts = append(opts, cloudsqlconn.WithLazyRefresh())
		}
		if s.IAMAuthN {
			opts = append(opts, cloudsqlconn.WithIAMAuthN())
		}
		if f := testHooks().Options; f != nil {
			opts = append(opts, f(s.IAMAuthN)...)
		}
		// The Dialer outlives the call that creates it (the pool's start,
		// often under a short deadline): its clients must not inherit
		// the cancellation.
		d, err := cloudsqlconn.NewDialer(context.WithoutCancel(ctx), opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("runpool: Cloud SQL dialer for %s: %w", s.Instance, err)
		}
		dialer = d
	}
	users++
	return dialer, &Handle{}, nil
}

// Wire sets cc up to dial s's instance through the process-wide Dialer
// with runpool's socket options (nd, pgxconn.Dialer), with TLS left to
// cloudsqlconn (sslmode=disable: the connector does mTLS itself). s comes
// from an adapter's Config.CloudSQL, which errors name; nil s means no
// Cloud SQL: nil Handle, cc unchanged. Release the Handle after the pool
// drained.
func Wire(ctx context.Context, cc *pgx.ConnConfig, s *Settings, nd *net.Dialer) (*Handle, error) {
	if s == nil {
		return nil, nil
	}
	if err := s.Validate("Config.CloudSQL.Instance", "Config.CloudSQL.IPType"); err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	d, h, err := acquire(ctx, s)
	if err != nil {
		return nil, err
	}
	opts, name := s.dialOptions(), s.Instance
	cc.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return dial(ctx, d, name, opts, nd)
	}
	// pgx names the host in its errors; the instance says more than a
	// socket path nobody dials.
	cc.Host = name
	cc.LookupFunc = func(context.Context, string) ([]string, error) { return []string{name}, nil }
	cc.TLSConfig = nil
	cc.Fallbacks = nil
	return h, nil
}

// Users is how many pools share the process's Dialer; 0 when it is closed.
func Users() int {
	mu.Lock()
	defer mu.Unlock()
	return users
}
