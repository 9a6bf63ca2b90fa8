package runpool

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// fakeConnector is a Connector without I/O, for tests of the pool's own
// decisions: it counts what the pool asks of it (connects and pings
// attempted, connections closed) and fails connects or pings when told
// to. Its connections are open until the pool closes them.
type fakeConnector struct {
	connects, pings, closes atomic.Int64
	failConnect, failPing   atomic.Bool
}

// fakeConn is a fakeConnector's connection; id counts from 1 in the
// order of the connects.
type fakeConn struct {
	id     int64
	closed atomic.Bool
}

// errFake is the error of a connect or ping the fakeConnector was told
// to fail.
var errFake = errors.New("fake connector: told to fail")

func (f *fakeConnector) Connect(ctx context.Context) (*fakeConn, error) {
	n := f.connects.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.failConnect.Load() {
		return nil, errFake
	}
	return &fakeConn{id: n}, nil
}

func (f *fakeConnector) Ping(ctx context.Context, c *fakeConn) error {
	f.pings.Add(1)
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.failPing.Load() || c.closed.Load() {
		return errFake
	}
	return nil
}

func (f *fakeConnector) Reusable(c *fakeConn) bool { return !c.closed.Load() }

func (f *fakeConnector) Cancel(context.Context, *fakeConn) error { return nil }

func (f *fakeConnector) Close(c *fakeConn, dead bool) {
	f.closes.Add(1)
	c.closed.Store(true)
}

// openFake opens a pool with cfg over a fresh fakeConnector, closed when
// the test ends.
func openFake(t testing.TB, cfg Config) (*Pool[*fakeConn], *fakeConnector) {
	t.Helper()
	f := &fakeConnector{}
	p, err := New(cfg, f, Hooks[*fakeConn]{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, f
}
