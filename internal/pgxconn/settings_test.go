package pgxconn

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/runpool/runpool"
)

// Behind a pooler no session setting is sent: PgBouncer rejects unknown
// startup parameters, and a SET would stay on a shared server connection.
func TestPoolerSendsNoSessionSettings(t *testing.T) {
	startup, set := serverSettings(runpool.Config{Pooler: runpool.PoolerPgBouncer, ServerIdleSessionTimeout: 2 * time.Minute}, 17)
	if len(startup) != 0 || len(set) != 0 {
		t.Fatalf("behind a pooler: startup %v, set %v; want none", startup, set)
	}
	startup, set = serverSettings(runpool.Config{Pooler: runpool.PoolerNone, ServerIdleSessionTimeout: 2 * time.Minute}, 17)
	if len(startup) == 0 || len(set) == 0 {
		t.Fatalf("without a pooler the reclaim settings must stay: startup %v, set %v", startup, set)
	}
}

// Port 6432 draws a hint, never a switch; an explicit setting silences it.
func TestPoolerHint(t *testing.T) {
	if h := poolerHint(runpool.Config{}, 6432); !strings.Contains(h, "RUNPOOL_POOLER=pgbouncer") {
		t.Errorf("port 6432: hint %q", h)
	}
	for _, c := range []struct {
		cfg  runpool.Config
		port uint16
	}{{runpool.Config{}, 5432}, {runpool.Config{Pooler: runpool.PoolerNone}, 6432}, {runpool.Config{Pooler: runpool.PoolerPgBouncer}, 6432}} {
		if h := poolerHint(c.cfg, c.port); h != "" {
			t.Errorf("%+v port %d: unexpected hint %q", c.cfg.Pooler, c.port, h)
		}
	}
}

// The server keepalives go in the startup packet by default, rounded up
// to whole seconds; idle_session_timeout only when set, to a server that
// knows it, and never when off (negative, RUNPOOL_..._TIMEOUT=off).
func TestSessionSettings(t *testing.T) {
	startup, set := serverSettings(runpool.Config{}, 17)
	if startup["tcp_keepalives_idle"] != "30" || startup["tcp_keepalives_interval"] != "10" || startup["tcp_keepalives_count"] != "3" || len(set) != 0 {
		t.Errorf("defaults: startup %v, set %v", startup, set)
	}
	startup, _ = serverSettings(runpool.Config{ServerKeepAliveIdle: 1500 * time.Millisecond}, 17)
	if startup["tcp_keepalives_idle"] != "2" || startup["tcp_keepalives_interval"] != "1" {
		t.Errorf("1.5s: startup %v", startup)
	}
	if startup, _ = serverSettings(runpool.Config{ServerKeepAliveIdle: -1}, 17); len(startup) != 0 {
		t.Errorf("server keepalive off: startup %v", startup)
	}
	on := runpool.Config{ServerIdleSessionTimeout: 90 * time.Second}
	if _, set = serverSettings(on, 14); set["idle_session_timeout"] != "90000" {
		t.Errorf("PostgreSQL 14: set %v", set)
	}
	for _, major := range []int{0, 13} {
		if _, set = serverSettings(on, major); len(set) != 0 {
			t.Errorf("server major %d: set %v", major, set)
		}
	}
	if _, set = serverSettings(runpool.Config{ServerIdleSessionTimeout: -1}, 15); set["idle_session_timeout"] != "" {
		t.Errorf("idle_session_timeout %q sent with off", set["idle_session_timeout"])
	}
}

// The defaults this package fills in before the pool resolves its
// Config are the pool's own.
func TestDefaultsAreThePools(t *testing.T) {
	p, err := runpool.New(runpool.Config{Logger: slog.New(slog.DiscardHandler)}, nopConnector{}, runpool.Hooks[struct{}]{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// the fields withDefaults fills
	read := func(c runpool.Config) runpool.Config {
		return runpool.Config{DialTimeout: c.DialTimeout, TCPKeepAliveIdle: c.TCPKeepAliveIdle, TCPKeepAliveInterval: c.TCPKeepAliveInterval,
			TCPKeepAliveCount: c.TCPKeepAliveCount, TCPUserTimeout: c.TCPUserTimeout, ServerKeepAliveIdle: c.ServerKeepAliveIdle}
	}
	pool := p.Config()
	if ours, theirs := read(withDefaults(runpool.Config{})), read(pool); ours != theirs {
		t.Errorf("defaults: this package's %+v, the pool's %+v", ours, theirs)
	}
	if withDefaults(pool) != pool {
		t.Errorf("withDefaults changed a resolved Config")
	}
}

// nopConnector opens nothing: a pool that never dials.
type nopConnector struct{}

func (nopConnector) Connect(context.Context) (struct{}, error) { return struct{}{}, context.Canceled }
func (nopConnector) Ping(context.Context, struct{}) error      { return nil }
func (nopConnector) Reusable(struct{}) bool                    { return true }
func (nopConnector) Cancel(context.Context, struct{}) error    { return nil }
func (nopConnector) Close(struct{}, bool)                      {}
