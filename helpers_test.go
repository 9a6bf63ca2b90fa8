package runpool_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openPool opens a pgx pool with cfg, closed when the test ends, and
// returns it with its server and role. By default it connects directly,
// as a fresh role without a connection limit, to the shared server, so
// the test can count that role's backends; opts change where and how.
func openPool(t testing.TB, cfg runpool.Config, opts ...poolOption) (*pgxadapter.Pool, *pgtest.Server, string) {
	t.Helper()
	var o poolOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.srv == nil {
		o.srv = pgtest.Shared(t)
		o.user = o.srv.CreateRole(t, -1)
	}
	url := o.srv.URL()
	if o.user != "" {
		url = o.srv.URLFor(o.user, "pw", o.user)
	}
	if o.proxy != nil {
		url = strings.Replace(url, o.srv.Addr(), o.proxy.Addr(), 1)
	}
	pc, err := pgxadapter.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pc.Pool = cfg
	pc.AfterConnect = o.afterConnect
	p, err := pgxadapter.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, o.srv, o.user
}

// A poolOption changes where or how openPool connects.
type poolOption func(*poolOptions)

type poolOptions struct {
	srv          *pgtest.Server
	user         string
	proxy        *faultproxy.Proxy
	afterConnect func(context.Context, *pgx.Conn) error
}

// onServer connects to srv as user (a role the test made, with the
// password "pw"), or as the superuser when user is "".
func onServer(srv *pgtest.Server, user string) poolOption {
	return func(o *poolOptions) { o.srv, o.user = srv, user }
}

// through connects through proxy (see startProxy).
func through(proxy *faultproxy.Proxy) poolOption {
	return func(o *poolOptions) { o.proxy = proxy }
}

// afterConnect sets pgx's AfterConnect hook, to make dials slow or hang.
func afterConnect(hook func(context.Context, *pgx.Conn) error) poolOption {
	return func(o *poolOptions) { o.afterConnect = hook }
}

// startProxy starts a fault proxy with px's settings, closed when the
// test ends; without a Target it forwards to the shared server.
func startProxy(t testing.TB, px faultproxy.Config) *faultproxy.Proxy {
	t.Helper()
	if px.Target == "" {
		px.Target = pgtest.Shared(t).Addr()
	}
	proxy, err := faultproxy.Start(px)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	return proxy
}

// acquireAll borrows n connections with acquire (a pool's Acquire) or
// fails the test.
func acquireAll[C any](t *testing.T, ctx context.Context, acquire func(context.Context) (C, error), n int) []C {
	t.Helper()
	cs := make([]C, n)
	for i := range cs {
		c, err := acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c
	}
	return cs
}

// acquireInBackground starts a caller that acquires with acquire within
// ctx, releases at once, and sends its error (nil when served).
func acquireInBackground[C interface{ Release() }](ctx context.Context, acquire func(context.Context) (C, error)) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, err := acquire(ctx)
		if err == nil {
			c.Release()
		}
		done <- err
	}()
	return done
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
