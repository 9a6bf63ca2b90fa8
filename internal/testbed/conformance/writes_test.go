package conformance

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
)

// Under connection faults, N single-row INSERTs with unique keys leave
// exactly the rows whose INSERT succeeded, plus at most those whose error
// left the outcome unknown; never a duplicate, never a lost
// acknowledged write.
func TestNoDoubledWrites(t *testing.T) {
	srv := pgtest.Shared(t)
	for _, a := range adaptertest.Adapters {
		t.Run(a.Name, func(t *testing.T) {
			user := srv.CreateRole(t, -1)
			nat := natProxy(t, srv, faultproxy.Reset, natIdle)
			dsn := dsnVia(srv, user, nat.Addr())
			db := open(t, a, dsn, runpool.Config{MaxConns: 4})
			ctx := context.Background()
			if err := db.Exec(ctx, "CREATE TABLE ledger (k int)"); err != nil { // no key: duplicates must show
				t.Fatal(err)
			}

			const n = 400
			stop := make(chan struct{})
			var faults sync.WaitGroup
			faults.Add(1)
			go func() { // a fault every 30 ms, alternating kinds
				defer faults.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(30 * time.Millisecond):
					}
					switch i % 3 {
					case 0:
						nat.Forget() // reset every flow
					case 1:
						srv.TerminateBackends(t, user)
					case 2:
						nat.CutAll()
					}
				}
			}()

			outcome := make([]error, n)
			keys := make(chan int)
			var workers sync.WaitGroup
			for range 8 {
				workers.Add(1)
				go func() {
					defer workers.Done()
					for k := range keys {
						ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
						outcome[k] = db.Exec(ictx, "INSERT INTO ledger VALUES ($1)", k)
						cancel()
					}
				}()
			}
			for k := range n {
				keys <- k
				time.Sleep(time.Millisecond)
			}
			close(keys)
			workers.Wait()
			close(stop)
			faults.Wait()

			// Count what landed, on a direct connection.
			count := make(map[int]int)
			direct := open(t, a, srv.URLFor(user, "pw", user), runpool.Config{MaxConns: 1})
			for k := range n {
				c, err := direct.QueryInt(ctx, "SELECT count(*) FROM ledger WHERE k = $1", k)
				if err != nil {
					t.Fatal(err)
				}
				count[k] = int(c)
			}
			var acked, failed, unknown, landedUnknown int
			for k, err := range outcome {
				switch {
				case count[k] > 1:
					t.Errorf("key %d written %d times", k, count[k])
				case err == nil:
					acked++
					if count[k] != 1 {
						t.Errorf("key %d: INSERT acknowledged but the row is missing", k)
					}
				case notRun(err):
					failed++
					if count[k] != 0 {
						t.Errorf("key %d: error %q says it did not run, but the row is there", k, err)
					}
				default:
					unknown++
					landedUnknown += count[k]
				}
			}
			t.Logf("%d INSERTs under faults: %d acknowledged, %d failed before running, %d unknown (%d of those landed); no duplicates",
				n, acked, failed, unknown, landedUnknown)
			if acked < n/2 {
				t.Errorf("only %d of %d acknowledged: the pool did not recover from the faults", acked, n)
			}
		})
	}
}

// notRun reports an error that proves the statement did not run: it never
// reached the server, or the server rejected it.
func notRun(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Severity != "FATAL" {
		return true
	}
	return pgconn.SafeToRetry(err)
}
