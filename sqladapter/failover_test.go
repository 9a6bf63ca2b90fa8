package sqladapter_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/sqladapter"
)

// TestFailoverDatabaseSQL: database/sql through runpool, one name (a
// forwarder) in front of the writer a, which is turned read-only while
// the name moves to b. A write refused by the demoted server is
// driver.ErrBadConn (nothing ran), so database/sql runs it again on
// another connection: the writes begun after the move all succeed, none
// reaches a after its demotion, and no id is written twice.
func TestFailoverDatabaseSQL(t *testing.T) {
	const deadline = 3 * time.Second
	a, b := pgtest.Start(t, pgtest.Options{}), pgtest.Start(t, pgtest.Options{})
	for _, s := range []*pgtest.Server{a, b} {
		s.Exec(t, "CREATE TABLE fo (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
	}
	proxy, err := faultproxy.Start(faultproxy.Config{Target: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg, err := sqladapter.ParseConfig(strings.Replace(a.URL(), a.Addr(), proxy.Addr(), 1))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 6
	db, err := sqladapter.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var next, moved atomic.Int64
	var mu sync.Mutex
	acked := map[int64]bool{}
	var afterMove, failedAfter int
	var slowest time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := next.Add(1)
				after := moved.Load() != 0
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				_, err := db.ExecContext(ctx, "INSERT INTO fo (id) VALUES ($1)", id)
				cancel()
				took := time.Since(start)
				mu.Lock()
				if err == nil {
					acked[id] = true
				}
				if after {
					afterMove++
					slowest = max(slowest, took)
					if err != nil {
						failedAfter++
						t.Errorf("write %d begun after the move: %v", id, err)
					}
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(400 * time.Millisecond)
	a.Exec(t, "ALTER SYSTEM SET default_transaction_read_only = on")
	a.Exec(t, "SELECT pg_reload_conf()")
	for a.QueryInt(t, "SELECT CASE WHEN current_setting('default_transaction_read_only') = 'on' THEN 1 ELSE 0 END") == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the open sessions apply the reload before their next statement
	demotedAt := time.Now()
	proxy.SetTarget(b.Addr())
	moved.Store(1)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	count := func(s *pgtest.Server, where string, args ...any) int64 {
		return s.QueryInt(t, "SELECT count(*) FROM fo"+where, args...)
	}
	lateA := count(a, " WHERE at >= $1", demotedAt)
	onA, onB := count(a, ""), count(b, "")
	where := map[int64]int{}
	for _, s := range []*pgtest.Server{a, b} {
		c, err := pgx.Connect(context.Background(), s.URL())
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := c.Query(context.Background(), "SELECT id FROM fo")
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		c.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			where[id]++
		}
	}
	both := int64(0)
	for _, n := range where {
		if n != 1 {
			both++
		}
	}
	for id := range acked {
		if where[id] != 1 {
			both++
		}
	}
	if lateA != 0 || both != 0 || afterMove == 0 || slowest > deadline {
		t.Errorf("rows on the old writer after its demotion %d, acknowledged ids not on exactly one server %d, writes after the move %d, slowest %v",
			lateA, both, afterMove, slowest)
	}
	if onA+onB < int64(len(acked)) {
		t.Errorf("%d rows for %d acknowledged writes", onA+onB, len(acked))
	}
	t.Logf("acked %d (old writer %d, new writer %d); after the move %d writes, %d failed, slowest %v", len(acked), onA, onB, afterMove, failedAfter, slowest.Round(time.Millisecond))
}
