package pgtest_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runpool/runpool/internal/testbed/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestSharedSelect1(t *testing.T) {
	t.Parallel()
	s := pgtest.Shared(t)
	if got := s.QueryInt(t, "SELECT 1"); got != 1 {
		t.Fatalf("SELECT 1 = %d", got)
	}
	if s2 := pgtest.Shared(t); s2 != s {
		t.Fatal("Shared returned a different server on second call")
	}
	if os.Getenv(pgtest.EnvURL) == "" {
		if err := s.Stop(); !errors.Is(err, pgtest.ErrNotOwned) {
			t.Fatalf("Stop on shared server = %v, want ErrNotOwned", err)
		}
	}
}

func TestMaxConnections(t *testing.T) {
	t.Parallel()
	s := pgtest.Start(t, pgtest.Options{MaxConnections: 7, Settings: map[string]string{"superuser_reserved_connections": "2"}})
	conn := connect(t, s.URL())
	var maxConn, reserved string
	if err := conn.QueryRow(context.Background(), "SHOW max_connections").Scan(&maxConn); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(context.Background(), "SHOW superuser_reserved_connections").Scan(&reserved); err != nil {
		t.Fatal(err)
	}
	if maxConn != "7" || reserved != "2" {
		t.Fatalf("max_connections = %s, superuser_reserved_connections = %s; want 7, 2", maxConn, reserved)
	}
}

func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	s := pgtest.Start(t, pgtest.Options{})
	port, pid := s.Port, s.Pid()
	s.Exec(t, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Port != port || s.Pid() == pid || s.Pid() == 0 {
		t.Fatalf("after restart port %d pid %d; before port %d pid %d", s.Port, s.Pid(), port, pid)
	}
	if got := s.QueryInt(t, "SELECT v FROM kept"); got != 42 {
		t.Fatalf("kept.v = %d", got)
	}
}

func TestKillThenStartAgain(t *testing.T) {
	t.Parallel()
	s := pgtest.Start(t, pgtest.Options{})
	s.Exec(t, "CREATE TABLE survived (v int); INSERT INTO survived VALUES (7)")
	conn := connect(t, s.URL())
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if s.Pid() != 0 {
		t.Fatal("Pid after Kill is not 0")
	}
	// The backend serving conn must be gone with the postmaster.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("connection still works after Kill")
	}
	if err := s.StartAgain(); err != nil {
		t.Fatal(err)
	}
	if got := s.QueryInt(t, "SELECT v FROM survived"); got != 7 {
		t.Fatalf("survived.v = %d", got)
	}
	if err := s.StartAgain(); err == nil {
		t.Fatal("StartAgain on a running server succeeded")
	}
}

func TestCreateRoleConnLimit(t *testing.T) {
	t.Parallel()
	s := pgtest.Shared(t)
	user := s.CreateRole(t, 2)
	if user2 := s.CreateRole(t, -1); user2 == user {
		t.Fatal("CreateRole returned the same name twice")
	}
	url := s.URLFor(user, "pw", user)
	c1 := connect(t, url)
	c2 := connect(t, url)
	var db string
	if err := c1.QueryRow(context.Background(), "SELECT current_user || '/' || current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if db != user+"/"+user {
		t.Fatalf("connected as %s, want %s/%s", db, user, user)
	}
	_ = c2
	if c3, err := pgx.Connect(context.Background(), url); err == nil {
		c3.Close(context.Background())
		t.Fatal("third connection succeeded despite CONNECTION LIMIT 2")
	}
}

func TestBackendsAndTerminate(t *testing.T) {
	t.Parallel()
	s := pgtest.Shared(t)
	user := s.CreateRole(t, -1)
	if n := s.Backends(t, user); n != 0 {
		t.Fatalf("Backends before connecting = %d", n)
	}
	var conns []*pgx.Conn
	for range 3 {
		conns = append(conns, connect(t, s.URLFor(user, "pw", user)))
	}
	if n := s.Backends(t, user); n != 3 {
		t.Fatalf("Backends = %d, want 3", n)
	}
	if n := s.TerminateBackends(t, user); n != 3 {
		t.Fatalf("TerminateBackends = %d, want 3", n)
	}
	if n := s.Backends(t, user); n != 0 {
		t.Fatalf("Backends after terminate = %d, want 0", n)
	}
	if err := conns[0].Ping(context.Background()); err == nil {
		t.Fatal("terminated connection still works")
	}
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
