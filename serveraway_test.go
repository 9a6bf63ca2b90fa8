package runpool_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
)

// TestAcquireWaitsOutAServerRestart: callers that arrive while the server
// is down (a restart, a maintenance failover) wait for it within their
// deadline instead of failing on the first refused dial, and all are
// served once it is back.
func TestAcquireWaitsOutAServerRestart(t *testing.T) {
	logs := &logRecorder{}
	p, srv, _ := openPool(t, runpool.Config{Logger: slog.New(logs)}, onServer(pgtest.Start(t, pgtest.Options{}), ""))

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	const callers = 8
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := p.Exec(ctx, "SELECT 1")
			errs <- err
		})
	}
	// The callers meet the refused dials before the server is back.
	waitFor(t, 10*time.Second, "no dial was refused while the server was down", func() bool {
		return p.Stat().DialFailureCount() >= 2
	})
	time.Sleep(300 * time.Millisecond)
	if err := srv.StartAgain(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	served := 0
	for err := range errs {
		if err != nil {
			t.Errorf("caller failed: %v", err)
			continue
		}
		served++
	}
	failed := p.Stat().DialFailureCount()
	t.Logf("%d of %d callers served across the restart; %d refused dials", served, callers, failed)
	// One Warn line when the dials began to fail, one Info line when they
	// succeeded again, whatever the number of dials and callers.
	if recs := logs.find("runpool: dials failing"); len(recs) != 1 || recs[0].level != slog.LevelWarn || !recs[0].attrs["server_away"].Bool() {
		t.Errorf("dials failing logged as %+v, want one Warn line with server_away", recs)
	}
	if recs := logs.find("runpool: dials succeed again"); len(recs) != 1 || recs[0].level != slog.LevelInfo || recs[0].attrs["failed"].Int64() != failed {
		t.Errorf("dials succeed again logged as %+v, want one Info line counting the %d failed dials", recs, failed)
	}
}

// TestAcquireGivesUpOnADownServerAtItsDeadline: a caller waiting for a
// server that does not come back fails at its deadline with both causes,
// its context's error and the refused dial.
func TestAcquireGivesUpOnADownServerAtItsDeadline(t *testing.T) {
	p, srv, _ := openPool(t, runpool.Config{Logger: slog.New(slog.DiscardHandler)}, onServer(pgtest.Start(t, pgtest.Options{}), ""))
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	took, err := timedQuery(p, 500*time.Millisecond)
	var ae *runpool.AcquireError
	var ce *pgconn.ConnectError
	if !errors.As(err, &ae) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want an AcquireError with DeadlineExceeded and the ConnectError", err, err)
	}
	if took < 450*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %v, want at the 500ms deadline", took)
	}
	if n := p.Stat().DialFailureCount(); n < 2 {
		t.Errorf("%d failed dials, want the dial tried again while the deadline allowed", n)
	}
}

// TestServerAwayTimeoutOff: with the wait turned off (negative, or
// RUNPOOL_SERVER_AWAY_TIMEOUT=off) the first refused dial fails the
// caller, as ordinary pools do.
func TestServerAwayTimeoutOff(t *testing.T) {
	p, srv, _ := openPool(t, runpool.Config{Logger: slog.New(slog.DiscardHandler), ServerAwayTimeout: -1}, onServer(pgtest.Start(t, pgtest.Options{}), ""))
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	took, err := timedQuery(p, 10*time.Second)
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) || took > 3*time.Second {
		t.Fatalf("after %v: err = %v, want the ConnectError at once", took, err)
	}
	if n := p.Stat().DialFailureCount(); n != 1 {
		t.Errorf("%d failed dials, want 1", n)
	}
}

// TestAcquireFailsFastWhenTheServerRefusesTheRole: a dial the server
// refuses for good (here the role may no longer log in) is not waited
// out: the caller gets the server's error at once, not at its deadline.
func TestAcquireFailsFastWhenTheServerRefusesTheRole(t *testing.T) {
	p, srv, user := openPool(t, runpool.Config{Logger: slog.New(slog.DiscardHandler)})
	srv.Exec(t, fmt.Sprintf("ALTER ROLE %s NOLOGIN", pgx.Identifier{user}.Sanitize()))
	srv.TerminateBackends(t, user)
	waitFor(t, 10*time.Second, "the terminated backend is still there", func() bool { return srv.Backends(t, user) == 0 })
	took, err := timedQuery(p, 10*time.Second)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28000" {
		t.Fatalf("err = %v, want the server's 28000 (role not permitted to log in)", err)
	}
	t.Logf("the refused dial came back after %v", took)
	if took > 3*time.Second {
		t.Errorf("failed after %v, want at once", took)
	}
}

// timedQuery runs SELECT 1 with a deadline d away and says how long it
// took.
func timedQuery(p *pgxadapter.Pool, d time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	_, err := p.Exec(ctx, "SELECT 1")
	return time.Since(start), err
}
