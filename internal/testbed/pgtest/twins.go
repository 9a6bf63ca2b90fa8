package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Twins starts two dedicated servers with a LOGIN role of the same name
// (password "pw", and a database of that name) on each, as two servers
// behind one address are (replicas behind a load balancer, a primary and
// the standby that replaced it). As root each runs in a PID namespace of
// its own, as in a container, so that one PID can name a session on each
// (samePIDs; see ConnectWithPID): a's next PIDs are then a few ahead of
// b's, so that a session on b can be given the PID of one opened on a.
func Twins(t testing.TB) (a, b *Server, role string, samePIDs bool) {
	t.Helper()
	samePIDs = os.Geteuid() == 0
	// autovacuum off: no worker takes a PID between a test's sessions.
	opts := Options{PIDNamespace: samePIDs, Settings: map[string]string{"autovacuum": "off"}}
	a, b = Start(t, opts), Start(t, opts)
	role = "rp_twin"
	for _, s := range []*Server{a, b} {
		s.Exec(t, "CREATE ROLE "+role+" LOGIN PASSWORD 'pw'")
		s.Exec(t, "CREATE DATABASE "+role+" OWNER "+role)
	}
	if samePIDs {
		// How many PIDs startup took varies (a connection attempt while
		// the server was starting forks a backend too).
		pid := func(s *Server) int64 { return s.QueryInt(t, "SELECT pg_backend_pid()") }
		behind := pid(b)
		for pid(a) < behind+2 { // each query opens a session, with the next PID
		}
	}
	return a, b, role, samePIDs
}

// ConnectWithPID opens connections to url until one has the backend PID
// pid, closing the others, and returns it (closed when the test ends). A
// server in a PID namespace of its own hands out PIDs in order from a few
// up, so this reaches pid unless the server is past it already; without
// samePIDs it returns the first connection.
func ConnectWithPID(t testing.TB, ctx context.Context, url string, pid uint32, samePIDs bool) *pgx.Conn {
	t.Helper()
	for range 1000 {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		got := c.PgConn().PID()
		if !samePIDs || got == pid {
			t.Cleanup(func() { c.Close(context.Background()) })
			return c
		}
		c.Close(ctx)
		if got > pid {
			t.Fatalf("pgtest: the server's PIDs are past %d already (%d)", pid, got)
		}
	}
	t.Fatalf("pgtest: no session with PID %d", pid)
	return nil
}
