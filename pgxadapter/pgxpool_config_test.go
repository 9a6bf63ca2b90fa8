package pgxadapter_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

// pool_max_conns in the connection string sizes the pool and is not sent
// to the server (which refused it with FATAL 42704 when it was).
func TestPoolMaxConnsInConnString(t *testing.T) {
	srv := pgtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := pgxadapter.New(ctx, srv.URL()+"&pool_max_conns=3")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("the server refused the connection: %v", err)
	}
	if n := p.Stat().MaxConns(); n != 3 {
		t.Fatalf("MaxConns %d, want pool_max_conns=3", n)
	}
	if n := p.Config().MaxConns; n != 3 {
		t.Fatalf("Config().MaxConns %d, want 3", n)
	}
}

// Each pool_* key lands in its Config field, as pgxpool.ParseConfig puts
// it, and leaves the runtime parameters pgx sends to the server.
func TestParseConfigReadsEveryPoolKey(t *testing.T) {
	cases := []struct {
		key, value string
		got        func(*pgxadapter.Config) any
		want       any
	}{
		{"pool_max_conns", "42", func(c *pgxadapter.Config) any { return c.MaxConns }, int32(42)},
		{"pool_min_conns", "2", func(c *pgxadapter.Config) any { return c.MinConns }, int32(2)},
		{"pool_min_idle_conns", "3", func(c *pgxadapter.Config) any { return c.MinIdleConns }, int32(3)},
		{"pool_max_conn_lifetime", "1h30m", func(c *pgxadapter.Config) any { return c.MaxConnLifetime }, 90 * time.Minute},
		{"pool_max_conn_idle_time", "20s", func(c *pgxadapter.Config) any { return c.MaxConnIdleTime }, 20 * time.Second},
		{"pool_health_check_period", "500ms", func(c *pgxadapter.Config) any { return c.HealthCheckPeriod }, 500 * time.Millisecond},
		{"pool_max_conn_lifetime_jitter", "2m", func(c *pgxadapter.Config) any { return c.MaxConnLifetimeJitter }, 2 * time.Minute},
		{"pool_max_conn_lifetime_jitter", "0s", func(c *pgxadapter.Config) any { return c.MaxConnLifetimeJitter }, time.Duration(-1)}, // pgxpool's "none"
		{"pool_ping_timeout", "250ms", func(c *pgxadapter.Config) any { return c.PingTimeout }, 250 * time.Millisecond},
	}
	for _, tc := range cases {
		for _, cs := range []string{
			"host=db user=app " + tc.key + "=" + tc.value,
			"postgres://app@db/app?" + tc.key + "=" + tc.value,
		} {
			cfg, err := pgxadapter.ParseConfig(cs)
			if err != nil {
				t.Fatalf("%s: %v", cs, err)
			}
			if got := tc.got(cfg); got != tc.want {
				t.Errorf("%s: got %v, want %v", cs, got, tc.want)
			}
			if _, ok := cfg.ConnConfig.RuntimeParams[tc.key]; ok {
				t.Errorf("%s: %s left in the runtime parameters sent to the server", cs, tc.key)
			}
			if cfg.ConnString() != cs {
				t.Errorf("ConnString() = %q, want %q", cfg.ConnString(), cs)
			}
		}
	}
	for _, bad := range []string{"pool_max_conns=0", "pool_max_conns=x", "pool_min_conns=1.5",
		"pool_max_conn_lifetime=1", "pool_ping_timeout=250", "pool_health_check_period=soon"} {
		_, err := pgxadapter.ParseConfig("host=db " + bad)
		var ce *runpool.ConfigError
		key, _, _ := strings.Cut(bad, "=")
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: got %v, want a ConfigError naming %s", bad, err, key)
		}
	}
}

// The precedence of one setting's sources: a RUNPOOL_* variable over the
// connection string's pool_* key, code (after ParseConfig) over both, and
// the same setting given twice in code (pgxpool's field and runpool's
// Pool field) must agree.
func TestPoolSettingPrecedence(t *testing.T) {
	cfg, err := pgxadapter.ParseConfig("host=db pool_max_conns=5 pool_max_conn_idle_time=20s")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != 5 || cfg.MaxConnIdleTime != 20*time.Second || cfg.Pool.MaxConns != 0 {
		t.Fatalf("connection string: MaxConns %d idle %v Pool.MaxConns %d", cfg.MaxConns, cfg.MaxConnIdleTime, cfg.Pool.MaxConns)
	}

	t.Setenv("RUNPOOL_MAX_CONNS", "7")
	t.Setenv("RUNPOOL_MAINTAIN_INTERVAL", "2s")
	cfg, err = pgxadapter.ParseConfig("host=db pool_max_conns=5 pool_max_conn_idle_time=20s pool_health_check_period=9s")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != 7 || cfg.HealthCheckPeriod != 2*time.Second {
		t.Fatalf("RUNPOOL_* should win over pool_*: MaxConns %d, HealthCheckPeriod %v", cfg.MaxConns, cfg.HealthCheckPeriod)
	}
	if cfg.MaxConnIdleTime != 20*time.Second {
		t.Fatalf("a key no variable sets still applies: idle %v", cfg.MaxConnIdleTime)
	}
	if cfg.Pool.MaxConns != 0 || cfg.Pool.MaintainInterval != 0 {
		t.Fatalf("runpool's counterparts not cleared: %d %v", cfg.Pool.MaxConns, cfg.Pool.MaintainInterval)
	}

	cfg.MaxConns = 9 // code, after ParseConfig
	rc, err := cfg.PoolConfig()
	if err != nil || rc.MaxConns != 9 || rc.MaintainInterval != 2*time.Second || rc.MaxConnIdleTime != 20*time.Second {
		t.Fatalf("PoolConfig: MaxConns %d interval %v idle %v, %v", rc.MaxConns, rc.MaintainInterval, rc.MaxConnIdleTime, err)
	}

	cfg.Pool.MaxConns = 9 // the same value under runpool's name: fine
	if _, err := cfg.PoolConfig(); err != nil {
		t.Fatal(err)
	}
	cfg.Pool.MaxConns = 4
	_, err = cfg.PoolConfig()
	var ce *runpool.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "Config.MaxConns") || !strings.Contains(err.Error(), "Config.Pool.MaxConns") {
		t.Fatalf("disagreeing MaxConns and Pool.MaxConns: got %v", err)
	}
	cfg.MaxConns = 0 // pgxpool's field unset: runpool's applies
	if rc, err := cfg.PoolConfig(); err != nil || rc.MaxConns != 4 {
		t.Fatalf("Pool.MaxConns alone: %d, %v", rc.MaxConns, err)
	}
}

// A lifetime set through pgxpool's field is exact, as in pgxpool, unless
// a jitter is asked for; runpool's default lifetime keeps its default
// jitter (a tenth), and so does one from RUNPOOL_MAX_CONN_LIFETIME.
func TestLifetimeJitterDefaults(t *testing.T) {
	cfg, err := pgxadapter.ParseConfig("host=db")
	if err != nil {
		t.Fatal(err)
	}
	if rc, _ := cfg.PoolConfig(); rc.MaxConnLifetime != 0 || rc.MaxConnLifetimeJitter != 0 {
		t.Fatalf("defaults: lifetime %v jitter %v, want both runpool's (zero)", rc.MaxConnLifetime, rc.MaxConnLifetimeJitter)
	}
	cfg.MaxConnLifetime = time.Minute
	if rc, _ := cfg.PoolConfig(); rc.MaxConnLifetimeJitter >= 0 {
		t.Fatalf("MaxConnLifetime set: jitter %v, want none (negative)", rc.MaxConnLifetimeJitter)
	}
	cfg.MaxConnLifetimeJitter = 5 * time.Second
	if rc, _ := cfg.PoolConfig(); rc.MaxConnLifetimeJitter != 5*time.Second {
		t.Fatalf("jitter set: %v", rc.MaxConnLifetimeJitter)
	}

	t.Setenv("RUNPOOL_MAX_CONN_LIFETIME", "20m")
	cfg, err = pgxadapter.ParseConfig("host=db")
	if err != nil {
		t.Fatal(err)
	}
	if rc, _ := cfg.PoolConfig(); rc.MaxConnLifetime != 20*time.Minute || rc.MaxConnLifetimeJitter != 2*time.Minute {
		t.Fatalf("RUNPOOL_MAX_CONN_LIFETIME=20m: lifetime %v jitter %v, want 20m and 2m", rc.MaxConnLifetime, rc.MaxConnLifetimeJitter)
	}
}

// Copy is deep: changing the copy's pgx settings or pool settings leaves
// the original as it was, and the copy builds a pool like the original.
func TestConfigCopyIsDeep(t *testing.T) {
	cs := "postgres://app:pw@db:5432/app?application_name=orders&pool_max_conns=6"
	orig, err := pgxadapter.ParseConfig(cs)
	if err != nil {
		t.Fatal(err)
	}
	orig.CloudSQL = &pgxadapter.CloudSQL{Instance: "p:r:i"}
	cp := orig.Copy()
	if cp.ConnString() != cs || cp.MaxConns != 6 || cp.ConnConfig.RuntimeParams["application_name"] != "orders" {
		t.Fatalf("copy differs: %q %d %v", cp.ConnString(), cp.MaxConns, cp.ConnConfig.RuntimeParams)
	}
	cp.ConnConfig.RuntimeParams["application_name"] = "other"
	cp.ConnConfig.Host = "elsewhere"
	cp.MaxConns = 1
	cp.CloudSQL.Instance = "x:y:z"
	if orig.ConnConfig.RuntimeParams["application_name"] != "orders" || orig.ConnConfig.Host != "db" ||
		orig.MaxConns != 6 || orig.CloudSQL.Instance != "p:r:i" {
		t.Fatalf("changing the copy changed the original: %v %s %d %s",
			orig.ConnConfig.RuntimeParams, orig.ConnConfig.Host, orig.MaxConns, orig.CloudSQL.Instance)
	}

	srv := pgtest.Shared(t)
	base, err := pgxadapter.ParseConfig(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	base.Pool.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := pgxadapter.NewWithConfig(ctx, base.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p.Config(); got == base || got.ConnString() != base.ConnString() {
		t.Fatalf("Config() should be an equal copy: %p %p %q", got, base, got.ConnString())
	}
}

// A Config not built by ParseConfig panics NewWithConfig with pgxpool's
// message, as pgxpool's does.
func TestNewWithConfigRequiresParseConfig(t *testing.T) {
	defer func() {
		if r := recover(); r != "config must be created by ParseConfig" {
			t.Fatalf("recovered %v", r)
		}
	}()
	_, _ = pgxadapter.NewWithConfig(context.Background(), &pgxadapter.Config{})
}

// QueryRow sends its statement when called, as pgxpool's does: an INSERT
// ... RETURNING whose row is never scanned still inserts.
func TestQueryRowRunsWithoutScan(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	p := openPool(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.Exec(ctx, "CREATE TABLE qr (id serial PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	row := p.QueryRow(ctx, "INSERT INTO qr DEFAULT VALUES RETURNING id")
	var n int64
	for ctx.Err() == nil {
		if err := p.QueryRow(ctx, "SELECT count(*) FROM qr").Scan(&n); err != nil || n == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n != 1 {
		t.Fatalf("%d rows after QueryRow without Scan, want 1", n)
	}
	var id int
	if err := row.Scan(&id); err != nil || id != 1 {
		t.Fatalf("Scan: id %d, %v", id, err)
	}
	if a := p.Stat().AcquiredConns(); a != 0 {
		t.Fatalf("%d connections still borrowed after Scan", a)
	}
}

// QueryRow's errors still come with Scan, and the connection goes back.
func TestQueryRowErrorAtScan(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	p := openPool(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	if err := p.QueryRow(ctx, "SELECT nope").Scan(&n); err == nil {
		t.Fatal("no error")
	}
	if err := p.QueryRow(ctx, "SELECT 1 WHERE false").Scan(&n); err == nil || !strings.Contains(err.Error(), "no rows") {
		t.Fatalf("got %v, want pgx.ErrNoRows", err)
	}
	if a := p.Stat().AcquiredConns(); a != 0 {
		t.Fatalf("%d connections still borrowed", a)
	}
}

// A connection idle past its lifetime is not handed out, even when it is
// trusted without a probe (idle less than ProbeAfterIdle, the maintainer
// not yet run): checkout closes it and opens another.
func TestExpiredIdleConnNotHandedOut(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	cfg.MaxConnLifetime = 250 * time.Millisecond
	cfg.HealthCheckPeriod = 10 * time.Second
	p := openPool(t, cfg)
	c := acquire(t, p)
	first := c.Conn()
	c.Release()
	time.Sleep(cfg.MaxConnLifetime + 100*time.Millisecond)
	c = acquire(t, p)
	second := c.Conn()
	c.Release()
	if first == second {
		t.Fatal("the expired connection was handed out")
	}
	if n := p.Stat().MaxLifetimeDestroyCount(); n != 1 {
		t.Fatalf("MaxLifetimeDestroyCount %d, want 1", n)
	}
}

// MinIdleConns keeps that many connections idle: borrowing one has the
// maintainer open another.
func TestMinIdleConnsFloor(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	cfg.MinIdleConns = 2
	cfg.HealthCheckPeriod = 20 * time.Millisecond
	p := openPool(t, cfg)
	idle := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for p.Stat().IdleConns() != want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := p.Stat().IdleConns(); n != want {
			t.Fatalf("%d idle, want %d", n, want)
		}
	}
	idle(2)
	c := acquire(t, p)
	defer c.Release()
	idle(2)
	if n := p.Stat().TotalConns(); n != 3 {
		t.Fatalf("%d connections, want 3 (one borrowed, two idle)", n)
	}
}

// A DialFunc of the user's own is used, not replaced by runpool's dialer.
func TestCustomDialFuncKept(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	var dials atomic.Int32
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	p := openPool(t, cfg)
	acquire(t, p).Release()
	if n := dials.Load(); n != 1 {
		t.Fatalf("the DialFunc dialed %d times, want 1", n)
	}
}

// A PingTimeout set is a hard cap on the checkout probe, as in pgxpool:
// a connection slower to answer is replaced, though runpool's own
// deadline (four of the path's round trips) would have waited for it.
func TestPingTimeoutCapsTheProbe(t *testing.T) {
	cfg, _, _ := hookConfig(t)
	const delay = 300 * time.Millisecond
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return slowReads{c, delay}, nil
	}
	cfg.PingTimeout = delay / 3
	cfg.MaxConns = 1
	var original atomic.Pointer[pgx.Conn]
	cfg.ShouldPing = func(_ context.Context, sp pgxadapter.ShouldPingParams) bool { return sp.Conn == original.Load() }
	p := openPool(t, cfg)
	c := acquire(t, p)
	original.Store(c.Conn())
	c.Release()
	c = acquire(t, p)
	again := c.Conn() == original.Load()
	c.Release()
	if again {
		t.Fatalf("the connection that did not answer within PingTimeout was handed out")
	}
}

// slowReads delays every read, as a distant or congested path does.
type slowReads struct {
	net.Conn
	delay time.Duration
}

func (s slowReads) Read(b []byte) (int, error) {
	time.Sleep(s.delay)
	return s.Conn.Read(b)
}
