package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// server is an embedded throwaway PostgreSQL with an observer: one
// superuser connection that creates a role per pool (so each pool's
// backends can be told apart) and samples pg_stat_activity for the peak
// of each role's backends. The observer holds one of the server's
// connection slots itself.
type server struct {
	*pgtest.Server
	destroy  func() error
	maxConns int // max_connections
	allows   int // less superuser_reserved_connections: what non-superusers may hold

	mu    sync.Mutex // guards conn, peak
	conn  *pgx.Conn
	peak  map[string]int
	stopc chan struct{}
	done  chan struct{}
}

// rolePrefix marks the roles the simulator creates.
const rolePrefix = "sim_"

// sampleEvery is how often the observer counts backends.
const sampleEvery = 20 * time.Millisecond

func startServer(maxConns int) (*server, error) {
	pg, destroy, err := pgtest.StartEmbedded(pgtest.Options{MaxConnections: maxConns})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		destroy()
		return nil, err
	}
	s := &server{Server: pg, destroy: destroy, conn: conn, peak: map[string]int{},
		stopc: make(chan struct{}), done: make(chan struct{})}
	err = conn.QueryRow(ctx, `SELECT current_setting('max_connections')::int,
		current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int`).Scan(&s.maxConns, &s.allows)
	if err != nil {
		conn.Close(ctx)
		destroy()
		return nil, err
	}
	go s.sample()
	return s, nil
}

// close stops the observer and the server, and removes its data.
func (s *server) close() {
	close(s.stopc)
	<-s.done
	s.conn.Close(context.Background())
	s.destroy()
}

// query runs one statement on the observer's connection.
func (s *server) query(f func(ctx context.Context, c *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	return f(ctx, s.conn)
}

// createRole creates a login role for one pool in one scenario.
func (s *server) createRole(scenario, pool string) (string, error) {
	role := rolePrefix + strings.NewReplacer("-", "_").Replace(scenario+"_"+pool)
	id := pgx.Identifier{role}.Sanitize()
	err := s.query(func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CREATE ROLE "+id+" LOGIN PASSWORD 'pw'")
		return err
	})
	return role, err
}

// dsn is role's DSN to the server, through addr when it is not empty.
func (s *server) dsn(role, addr string) string {
	u := s.URLFor(role, "pw", "postgres")
	if addr != "" {
		u = strings.Replace(u, s.Addr(), addr, 1)
	}
	return u
}

const backendsByRole = `SELECT usename, count(*) FROM pg_stat_activity
	WHERE backend_type = 'client backend' AND usename LIKE 'sim\_%' GROUP BY usename`

// counts returns the client backends of every simulator role.
func (s *server) counts() (map[string]int, error) {
	n := map[string]int{}
	err := s.query(func(ctx context.Context, c *pgx.Conn) error {
		rows, _ := c.Query(ctx, backendsByRole)
		var role string
		var k int
		_, err := pgx.ForEachRow(rows, []any{&role, &k}, func() error { n[role] = k; return nil })
		return err
	})
	return n, err
}

// settle waits until no backend is starting or ending: the count of
// client backends unchanged over three samples sampleEvery apart, for
// at most a second. A burst's pool may close many connections as it
// ends (database/sql keeps two idle); their backends exiting would
// otherwise take the two shared cores from the next instance's burst,
// which on a platform has its own.
func (s *server) settle() {
	total := func() int {
		n, _ := s.counts()
		t := 0
		for _, k := range n {
			t += k
		}
		return t
	}
	deadline := time.Now().Add(time.Second)
	last, same := total(), 0
	for same < 3 && time.Now().Before(deadline) {
		time.Sleep(sampleEvery)
		if t := total(); t == last {
			same++
		} else {
			last, same = t, 0
		}
	}
}

// sample keeps the peak of each role's backends until close.
func (s *server) sample() {
	defer close(s.done)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		if n, err := s.counts(); err == nil {
			s.mu.Lock()
			for role, k := range n {
				s.peak[role] = max(s.peak[role], k)
			}
			s.mu.Unlock()
		}
		select {
		case <-s.stopc:
			return
		case <-t.C:
		}
	}
}

// peakOf is the most backends role had at once so far.
func (s *server) peakOf(role string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak[role]
}

// backends is role's client backends now.
func (s *server) backends(role string) int {
	n, err := s.counts()
	if err != nil {
		return -1
	}
	return n[role]
}

// backendsAfter waits until role has no backend, or until wait passed,
// and returns how many are left: backends only leave once the
// instances are gone, so this is the count at the deadline.
func (s *server) backendsAfter(role string, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	for {
		n := s.backends(role)
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// activeOf is how many of role's backends are running a statement.
func (s *server) activeOf(role string) int {
	var n int
	err := s.query(func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE usename = $1 AND state = 'active'`, role).Scan(&n)
	})
	if err != nil {
		return -1
	}
	return n
}

// coldBurst is the yardstick for a burst after a freeze: the p99 of n
// concurrent requests that each dial a new connection to dsn and run one
// query, what a pool that starts cold pays for the same burst on this
// machine at this moment.
func coldBurst(dsn string, n int, query time.Duration) (time.Duration, error) {
	ds := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			c, err := pgx.Connect(ctx, dsn)
			if err == nil {
				_, err = c.Exec(ctx, "SELECT pg_sleep($1)", query.Seconds())
				ds[i] = time.Since(start)
				c.Close(ctx)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, fmt.Errorf("cold burst: %w", err)
	}
	return percentile(ds, 99), nil
}

// describeBackends writes what role's backends are doing (SIMULATE_DEBUG).
func (s *server) describeBackends(w io.Writer, role string) {
	s.query(func(ctx context.Context, c *pgx.Conn) error {
		rows, _ := c.Query(ctx, `SELECT pid, state, round(extract(epoch FROM now() - backend_start)::numeric, 1)::text,
			round(extract(epoch FROM now() - state_change)::numeric, 1)::text, left(query, 60)
			FROM pg_stat_activity WHERE usename = $1`, role)
		var pid int
		var state, age, since, query string
		_, err := pgx.ForEachRow(rows, []any{&pid, &state, &age, &since, &query}, func() error {
			fmt.Fprintf(w, "%s: pid %d %s for %ss, started %ss ago, last query %q\n", role, pid, state, since, age, query)
			return nil
		})
		return err
	})
}
