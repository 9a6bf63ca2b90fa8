package pgxconn

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// settingSource is where the server says the session's
// idle_session_timeout came from: "client" for the startup packet,
// "session" for a SET, "default" when nobody set it.
func settingSource(t *testing.T, conn *pgx.Conn) (setting, source string) {
	t.Helper()
	err := conn.QueryRow(context.Background(),
		`SELECT setting, source FROM pg_settings WHERE name = 'idle_session_timeout'`).Scan(&setting, &source)
	if err != nil {
		t.Fatal(err)
	}
	return setting, source
}

func connect(t *testing.T, s *Session) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, s.ConnConfig().Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if err := s.AfterConnect(ctx, conn); err != nil {
		t.Fatal(err)
	}
	return conn
}

// The first connection learns the server's version and gets
// idle_session_timeout with a SET; every later one carries it in the
// startup packet, so no backend exists without it even for a moment.
func TestVersionSettingsMoveIntoTheStartupPacket(t *testing.T) {
	srv := pgtest.Shared(t)
	cc, err := pgx.ParseConfig(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	pool := runpool.Config{ServerIdleSessionTimeout: 90 * time.Second}
	s := Setup(cc, pool)

	first := connect(t, s)
	if serverMajor(first) < 14 {
		t.Skipf("server %d has no idle_session_timeout", serverMajor(first))
	}
	if setting, source := settingSource(t, first); setting != "90000" || source != "session" {
		t.Fatalf("first connection: idle_session_timeout %s from %q, want 90000 from a SET (session)", setting, source)
	}
	second := connect(t, s)
	if setting, source := settingSource(t, second); setting != "90000" || source != "client" {
		t.Fatalf("second connection: idle_session_timeout %s from %q, want 90000 from the startup packet (client)", setting, source)
	}

	// A server that refuses the name (a failover to an older major
	// version) puts the startup packet back to what every server accepts.
	s.DialFailed(&pgconn.PgError{Code: "42704", Message: `unrecognized configuration parameter "idle_session_timeout"`})
	if _, ok := s.ConnConfig().RuntimeParams["idle_session_timeout"]; ok {
		t.Fatal("idle_session_timeout still in the startup packet after the server refused it")
	}
	third := connect(t, s)
	if setting, source := settingSource(t, third); setting != "90000" || source != "session" {
		t.Fatalf("after a refusal: idle_session_timeout %s from %q, want 90000 from a SET (session)", setting, source)
	}
}

// A value the user set in the connection string wins, wherever it travels.
func TestUserSettingWins(t *testing.T) {
	srv := pgtest.Shared(t)
	cc, err := pgx.ParseConfig(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	cc.RuntimeParams["idle_session_timeout"] = "123000"
	s := Setup(cc, runpool.Config{ServerIdleSessionTimeout: 90 * time.Second})
	for range 2 {
		conn := connect(t, s)
		if setting, source := settingSource(t, conn); setting != "123000" || source != "client" {
			t.Fatalf("idle_session_timeout %s from %q, want the user's 123000 from the startup packet", setting, source)
		}
	}
}

// EndOrphans ends a matching session and nothing else: not one whose
// start differs (a PID the server reused), not one at work, not one of
// another user.
func TestEndOrphansMatchesOnlyTheOrphan(t *testing.T) {
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, -1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := func(role string) (*pgx.Conn, runpool.Orphan) {
		cc, err := pgx.ParseConfig(srv.URLFor(role, "pw", role))
		if err != nil {
			t.Fatal(err)
		}
		c := connect(t, Setup(cc, runpool.Config{}))
		o, ok := sessionOf(c)
		if !ok || o.PID != c.PgConn().PID() {
			t.Fatalf("session %+v (known %v) of PID %d", o, ok, c.PgConn().PID())
		}
		return c, o
	}
	via, _ := open(user)
	idle, idleO := open(user)
	busy, busyO := open(user)
	other, otherO := open(srv.CreateRole(t, -1))
	_, _ = idle, other

	// The same PID begun a microsecond later: a PID the server reused.
	reused := idleO
	reused.Began = reused.Began.Add(time.Microsecond)
	// busy runs a query while EndOrphans looks.
	done := make(chan error, 1)
	go func() { _, err := busy.Exec(ctx, "SELECT pg_sleep(1)"); done <- err }()
	time.Sleep(200 * time.Millisecond)
	if n, err := endOrphans(ctx, via, []runpool.Orphan{reused, busyO, otherO}); err != nil || n != 0 {
		t.Fatalf("ended %d (err %v) of a reused PID, a busy session and another user's; want 0", n, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the busy session was ended: %v", err)
	}
	if n, err := endOrphans(ctx, via, []runpool.Orphan{idleO}); err != nil || n != 1 {
		t.Fatalf("ended %d (err %v) of one idle orphan, want 1", n, err)
	}
	if err := other.Ping(ctx); err != nil {
		t.Errorf("another user's session was ended: %v", err)
	}
}
