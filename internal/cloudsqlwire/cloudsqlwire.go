// Package cloudsqlwire wires cloud.google.com/go/cloudsqlconn into pgx's
// connection settings, the same way for both adapters: one Dialer per
// process, shared by every pool and closed after the last of them
// drained. Importing it (package cloudsql does) registers the wiring with
// internal/cloudsqldial.
package cloudsqlwire

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"

	"cloud.google.com/go/cloudsqlconn"
	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/cloudsqldial"
)

func init() { cloudsqldial.Register(wire) }

func dialOptions(s *cloudsqldial.Settings) []cloudsqlconn.DialOption {
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

// release gives one pool's share back; the last closes the Dialer.
func release() {
	mu.Lock()
	defer mu.Unlock()
	users--
	if users == 0 && dialer != nil {
		_ = dialer.Close()
		dialer = nil
	}
}

// acquire returns the process-wide Dialer, creating it with s's
// process-level choices (lazy refresh, IAM) when no pool holds it.
func acquire(ctx context.Context, s *cloudsqldial.Settings) (*cloudsqlconn.Dialer, *cloudsqldial.Handle, error) {
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
	return dialer, cloudsqldial.NewHandle(release), nil
}

// wire is cloudsqldial.Wire's work, on settings it has checked.
func wire(ctx context.Context, cc *pgx.ConnConfig, s *cloudsqldial.Settings, nd *net.Dialer) (*cloudsqldial.Handle, error) {
	d, h, err := acquire(ctx, s)
	if err != nil {
		return nil, err
	}
	opts, name := dialOptions(s), s.Instance
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
