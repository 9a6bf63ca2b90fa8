package pgxadapter_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

// A failover between two real servers: the writer a is turned read-only
// (as a demoted writer is) and the name (a TCP forwarder standing in for
// a DNS name or a load balancer) moves to b. Writes with unique ids run
// throughout; afterwards every acknowledged id is on exactly one server,
// none reached a after its demotion, and the writes begun after the name
// moved all succeeded within their deadline.

// failoverServers starts the old and the new writer, each with the table
// fo, and returns them.
func failoverServers(t *testing.T) (a, b *pgtest.Server) {
	a, b = pgtest.Start(t, pgtest.Options{}), pgtest.Start(t, pgtest.Options{})
	for _, s := range []*pgtest.Server{a, b} {
		s.Exec(t, "CREATE TABLE fo (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
	}
	return a, b
}

// demote turns s read-only as a demoted writer is: sessions already open
// stay open, and refuse writes from their next statement on. It returns
// once a new session finds the server read-only, the moment from which
// no write may land on s.
func demote(t *testing.T, s *pgtest.Server) time.Time {
	s.Exec(t, "ALTER SYSTEM SET default_transaction_read_only = on")
	s.Exec(t, "SELECT pg_reload_conf()")
	for s.QueryInt(t, "SELECT CASE WHEN current_setting('default_transaction_read_only') = 'on' THEN 1 ELSE 0 END") == 0 {
		time.Sleep(time.Millisecond)
	}
	// The postmaster passes the reload on to the open sessions as it
	// passes it to new ones; each applies it before its next statement.
	// A statement already running when the signal came finishes.
	time.Sleep(20 * time.Millisecond)
	return time.Now()
}

// writeLoad runs writers that insert unique ids into fo until stop, each
// write within deadline (Exec and QueryRow by turns), and records what
// became of each.
type writeLoad struct {
	next     atomic.Int64
	mu       sync.Mutex
	acked    []int64
	failures []writeResult
	after    []writeResult // writes begun at or after movedAt
	movedAt  atomic.Int64  // UnixNano of the name's move, 0 before
}

type writeResult struct {
	id   int64
	took time.Duration
	err  error
}

func (w *writeLoad) run(t *testing.T, pool *pgxadapter.Pool, writers int, deadline time.Duration, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := w.next.Add(1)
				start := time.Now()
				moved := w.movedAt.Load()
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				var err error
				if id%2 == 0 { // both paths that run a refused statement again
					_, err = pool.Exec(ctx, "INSERT INTO fo (id) VALUES ($1)", id)
				} else {
					var got int64
					if err = pool.QueryRow(ctx, "INSERT INTO fo (id) VALUES ($1) RETURNING id", id).Scan(&got); err == nil && got != id {
						err = fmt.Errorf("RETURNING %d for %d", got, id)
					}
				}
				cancel()
				r := writeResult{id: id, took: time.Since(start), err: err}
				w.mu.Lock()
				if err == nil {
					w.acked = append(w.acked, id)
				} else {
					w.failures = append(w.failures, r)
				}
				if moved != 0 {
					w.after = append(w.after, r)
				}
				w.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return &wg
}

// ids reads the ids in fo on s, and how many rows were written at or
// after since.
func ids(t *testing.T, s *pgtest.Server, since time.Time) (all []int64, late int64) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT id FROM fo ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	all, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	if err := c.QueryRow(ctx, "SELECT count(*), coalesce(max(at), 'epoch') FROM fo WHERE at >= $1", since).Scan(&late, &last); err != nil {
		t.Fatal(err)
	}
	if late > 0 {
		t.Logf("last row at %v, %v after %v", last, last.Sub(since), since)
	}
	return all, late
}

// check holds the must-shows: every acknowledged id on exactly one
// server, none on the old writer after its demotion, and every write
// begun after the move served within its deadline.
func (w *writeLoad) check(t *testing.T, a, b *pgtest.Server, demotedAt time.Time, deadline time.Duration) {
	t.Helper()
	onA, lateA := ids(t, a, demotedAt)
	onB, _ := ids(t, b, demotedAt)
	where := map[int64]int{}
	for _, id := range onA {
		where[id]++
	}
	for _, id := range onB {
		where[id]++
	}
	for id, n := range where {
		if n != 1 {
			t.Errorf("id %d written %d times", id, n)
		}
	}
	for _, id := range w.acked {
		if where[id] != 1 {
			t.Errorf("acknowledged id %d is on %d servers", id, where[id])
		}
	}
	if lateA != 0 {
		t.Errorf("%d rows reached the old writer after its demotion", lateA)
	}
	var slowest time.Duration
	failedAfter := 0
	for _, r := range w.after {
		slowest = max(slowest, r.took)
		if r.err != nil {
			failedAfter++
			t.Errorf("write %d begun after the move failed after %v: %v", r.id, r.took.Round(time.Millisecond), r.err)
		}
	}
	if len(w.after) == 0 {
		t.Fatal("no write after the move")
	}
	if slowest > deadline {
		t.Errorf("slowest write after the move took %v, past the deadline %v", slowest, deadline)
	}
	fails := make([]string, 0, len(w.failures))
	for _, f := range w.failures {
		fails = append(fails, fmt.Sprintf("%d:%v", f.id, f.err))
	}
	sort.Strings(fails)
	t.Logf("acked %d (old writer %d, new writer %d); failed %d overall %v; after the move %d writes, %d failed, slowest %v",
		len(w.acked), len(onA), len(onB), len(w.failures), fails, len(w.after), failedAfter, slowest.Round(time.Millisecond))
}

// TestFailoverNameMoves: one name (the forwarder) in front of a, which is
// demoted; the name moves to b lag later. With read-write required
// (target_session_attrs=read-write), a caller meeting the old writer in
// between waits as for a server away; without it, the name moves at once.
func TestFailoverNameMoves(t *testing.T) {
	for _, tc := range []struct {
		name string
		tsa  bool
		lag  time.Duration
	}{
		{"moveAtOnce", false, 0},
		{"readWriteRequired", true, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const deadline = 3 * time.Second
			a, b := failoverServers(t)
			proxy, err := faultproxy.Start(faultproxy.Config{Target: a.Addr()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			url := strings.Replace(a.URL(), a.Addr(), proxy.Addr(), 1)
			if tc.tsa {
				url += "&target_session_attrs=read-write"
			}
			cfg, err := pgxadapter.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.MaxConns = 6
			pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()

			var w writeLoad
			stop := make(chan struct{})
			wg := w.run(t, pool, 4, deadline, stop)
			time.Sleep(400 * time.Millisecond) // connections to a, idle and borrowed
			demotedAt := demote(t, a)
			time.Sleep(tc.lag)
			proxy.SetTarget(b.Addr())
			w.movedAt.Store(time.Now().UnixNano())
			time.Sleep(time.Second)
			close(stop)
			wg.Wait()
			if tc.tsa {
				// Nothing fails: between the demotion and the move
				// the callers waited for a writer.
				for _, f := range w.failures {
					t.Errorf("write %d failed after %v: %v", f.id, f.took.Round(time.Millisecond), f.err)
				}
			}
			w.check(t, a, b, demotedAt, deadline)
		})
	}
}

// TestFailoverMultiHost: a multi-host DSN with
// target_session_attrs=read-write, through runpool's dialer: after a is
// demoted, writes go to b.
func TestFailoverMultiHost(t *testing.T) {
	const deadline = 3 * time.Second
	a, b := failoverServers(t)
	url := fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=postgres sslmode=disable target_session_attrs=read-write", a.Port, b.Port)
	cfg, err := pgxadapter.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 6
	pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// b is a second writer until a is demoted, as in a switchover: the
	// DSN prefers a, so b receives nothing before.
	var w writeLoad
	stop := make(chan struct{})
	wg := w.run(t, pool, 4, deadline, stop)
	time.Sleep(400 * time.Millisecond)
	demotedAt := demote(t, a)
	w.movedAt.Store(time.Now().UnixNano())
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	w.check(t, a, b, demotedAt, deadline)
}

// TestFailoverNameResolvedPerDial: the name is looked up on every dial
// (pgx's LookupFunc, net.Resolver by default, which caches nothing), so
// when the name's record moves after a demotion, the next dial follows.
// Here the lookup stands in for DNS: it answers a's address, then b's.
func TestFailoverNameResolvedPerDial(t *testing.T) {
	const deadline = 3 * time.Second
	a, b := failoverServers(t)
	cfg, err := pgxadapter.ParseConfig("postgres://postgres@writer.cluster.test:5432/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	var target atomic.Pointer[string]
	addrA, addrB := a.Addr(), b.Addr()
	target.Store(&addrA)
	var lookups atomic.Int64
	cfg.ConnConfig.LookupFunc = func(_ context.Context, host string) ([]string, error) {
		if host != "writer.cluster.test" {
			return nil, fmt.Errorf("unexpected host %q", host)
		}
		lookups.Add(1)
		return []string{*target.Load()}, nil
	}
	cfg.MaxConns = 6
	pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var w writeLoad
	stop := make(chan struct{})
	wg := w.run(t, pool, 4, deadline, stop)
	time.Sleep(400 * time.Millisecond)
	demotedAt := demote(t, a)
	target.Store(&addrB)
	w.movedAt.Store(time.Now().UnixNano())
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	w.check(t, a, b, demotedAt, deadline)
	if n, dials := lookups.Load(), pool.Stat().NewConnsCount(); n < dials {
		t.Errorf("%d lookups for %d dials: an address was reused", n, dials)
	} else {
		t.Logf("%d lookups, %d dials", n, dials)
	}
}

// TestFailoverNotForReadOnlyOfTheCallers: a 25006 that is not a server's
// change of role changes nothing: a read-only transaction of the
// caller's on a writer, and a pool pointed at a read-only server from
// the start (a replica), keep their connections, dial nothing, and do
// not run the refused statement again.
func TestFailoverNotForReadOnlyOfTheCallers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(s *pgtest.Server) *pgxadapter.Pool {
		cfg, err := pgxadapter.ParseConfig(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = 4
		pool, err := pgxadapter.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return pool
	}
	warm := func(pool *pgxadapter.Pool) {
		var cs []*pgxadapter.Conn
		for range 3 {
			c, err := pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		for _, c := range cs {
			c.Release()
		}
	}
	refused := func(err error) bool { return err != nil && strings.Contains(err.Error(), "25006") }

	writer, replica := failoverServers(t)
	replica.Exec(t, "ALTER SYSTEM SET default_transaction_read_only = on")
	replica.Exec(t, "SELECT pg_reload_conf()")
	for replica.QueryInt(t, "SELECT CASE WHEN current_setting('default_transaction_read_only') = 'on' THEN 1 ELSE 0 END") == 0 {
		time.Sleep(time.Millisecond)
	}

	pool := open(writer)
	warm(pool)
	before := pool.Stat().NewConnsCount()
	for i := range 5 {
		tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO fo (id) VALUES ($1)", i); !refused(err) {
			t.Fatalf("a write in a read-only transaction: %v", err)
		}
		tx.Rollback(ctx)
	}
	if st := pool.Stat(); st.NewConnsCount() != before || st.TotalConns() != 3 {
		t.Errorf("writer: %d dials, %d connections after the caller's read-only transactions; want %d and 3", st.NewConnsCount(), st.TotalConns(), before)
	}

	pool = open(replica)
	warm(pool)
	before = pool.Stat().NewConnsCount()
	for i := range 5 {
		if _, err := pool.Exec(ctx, "INSERT INTO fo (id) VALUES ($1)", i); !refused(err) {
			t.Fatalf("a write on a read-only server: %v", err)
		}
	}
	if st := pool.Stat(); st.NewConnsCount() != before || st.TotalConns() != 3 {
		t.Errorf("replica: %d dials, %d connections after writes it refused; want %d and 3", st.NewConnsCount(), st.TotalConns(), before)
	}
}

// TestFailoverRetryOnce: a write that takes an idle connection to the
// demoted writer is refused there (25006: nothing written) and runs once
// more on a new connection, which follows the name to the new writer;
// for Exec as for QueryRow, whose refusal shows only in Scan.
func TestFailoverRetryOnce(t *testing.T) {
	a, b := failoverServers(t)
	proxy, err := faultproxy.Start(faultproxy.Config{Target: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg, err := pgxadapter.ParseConfig(strings.Replace(a.URL(), a.Addr(), proxy.Addr(), 1))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := pgxadapter.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for i, write := range []func(id int64) error{
		func(id int64) error { _, err := pool.Exec(ctx, "INSERT INTO fo (id) VALUES ($1)", id); return err },
		func(id int64) error {
			return pool.QueryRow(ctx, "INSERT INTO fo (id) VALUES ($1) RETURNING id", id).Scan(&id)
		},
	} {
		id := int64(i) * 10
		if err := write(id); err != nil { // opens a connection to the writer of the moment
			t.Fatal(err)
		}
		old, now := a, b
		if i == 1 {
			old, now = b, a // back again: a is the writer once more
			old.Exec(t, "ALTER SYSTEM SET default_transaction_read_only = on")
			old.Exec(t, "SELECT pg_reload_conf()")
			now.Exec(t, "ALTER SYSTEM RESET default_transaction_read_only")
			now.Exec(t, "SELECT pg_reload_conf()")
			for now.QueryInt(t, "SELECT CASE WHEN current_setting('default_transaction_read_only') = 'off' THEN 1 ELSE 0 END") == 0 {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
		} else {
			demote(t, old)
		}
		proxy.SetTarget(now.Addr())
		dials := pool.Stat().NewConnsCount()
		if err := write(id + 1); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if n := now.QueryInt(t, "SELECT count(*) FROM fo WHERE id = $1", id+1) + old.QueryInt(t, "SELECT count(*) FROM fo WHERE id = $1", id+1)*100; n != 1 {
			t.Errorf("write %d: on the new writer and the old one: %d (want 1: on the new writer only)", i, n)
		}
		if d := pool.Stat().NewConnsCount() - dials; d != 1 {
			t.Errorf("write %d: %d dials, want 1", i, d)
		}
	}
}
