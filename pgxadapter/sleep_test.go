package pgxadapter_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/internal/testbed/sleepproxy"
	"github.com/runpool/runpool/pgxadapter"
)

// TestSleepingDatabase: a database that scales to zero (sleepproxy in
// front of a real server) sleeps once the pool, idle past
// MaxConnIdleTime with the defaults otherwise (MinConns 0), holds no
// connection: the server sees none from the pool for the rest of the
// idle period, and the pool dials nothing meanwhile. The first requests
// after it meet the wake-up (Neon's message, or refused connections) and
// are served within their deadline, waiting as for a restart.
func TestSleepingDatabase(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse bool
	}{{"wakeMessage", false}, {"wakeRefused", true}} {
		t.Run(tc.name, func(t *testing.T) {
			const (
				idleLimit = time.Second
				sleepIdle = time.Second // the proxy sleeps once nothing was open this long
				wakeTime  = 1500 * time.Millisecond
				deadline  = 5 * time.Second
				idlePart  = 3 * time.Second // sampled after the pool emptied
			)
			s := pgtest.Shared(t)
			proxy, err := sleepproxy.Start(sleepproxy.Config{Target: s.Addr(), SleepAfter: sleepIdle, WakeTime: wakeTime, Refuse: tc.refuse})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			app := fmt.Sprintf("rp_sleep_%s_%d", strings.ToLower(tc.name), time.Now().UnixNano())
			url := strings.Replace(s.URL(), s.Addr(), proxy.Addr(), 1) + "&application_name=" + app
			cfg, err := pgxadapter.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.MaxConns = 4
			cfg.MaxConnIdleTime = idleLimit
			pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			backends := func() int64 {
				return s.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app)
			}

			burst := func(n int) (slowest time.Duration) {
				var wg sync.WaitGroup
				var mu sync.Mutex
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ctx, cancel := context.WithTimeout(context.Background(), deadline)
						defer cancel()
						start := time.Now()
						var got int
						err := pool.QueryRow(ctx, "SELECT $1::int FROM pg_sleep(0.01)", i).Scan(&got)
						took := time.Since(start)
						if err != nil || got != i {
							t.Errorf("request %d: %v after %v", i, err, took.Round(time.Millisecond))
						}
						mu.Lock()
						slowest = max(slowest, took)
						mu.Unlock()
					}()
				}
				wg.Wait()
				return slowest
			}
			burst(8)
			if n := backends(); n == 0 {
				t.Fatal("no backend while serving")
			}

			// Idle: the pool lets go of its connections after the idle limit.
			emptied := time.Now()
			for pool.Stat().TotalConns() > 0 {
				if time.Since(emptied) > idleLimit+3*time.Second {
					t.Fatalf("the pool still holds %d connections %v after the last request", pool.Stat().TotalConns(), time.Since(emptied))
				}
				time.Sleep(20 * time.Millisecond)
			}
			emptiedAfter := time.Since(emptied)
			// The last close sent its goodbye; the server ends that backend
			// a moment later, on a loaded machine not by the first sample.
			for gone := time.Now(); backends() != 0; time.Sleep(10 * time.Millisecond) {
				if time.Since(gone) > time.Second {
					t.Fatalf("the server still has %d backends of the pool 1s after the pool closed its last connection", backends())
				}
			}
			passed := proxy.Passed()
			samples, seen := 0, int64(0)
			for end := time.Now().Add(idlePart); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				seen = max(seen, backends())
				samples++
			}
			if seen != 0 {
				t.Errorf("the server saw %d backends of the pool while it idled", seen)
			}
			if d := proxy.Passed() - passed; d != 0 {
				t.Errorf("the pool opened %d connections while idle", d)
			}
			if !proxy.Asleep() {
				t.Fatal("the database did not fall asleep")
			}

			// The wake-up: the first requests wait for it within their deadline.
			slowest := burst(8)
			if proxy.Refused() == 0 {
				t.Error("no connection met the wake-up")
			}
			t.Logf("emptied %v after the last request (idle limit %v); %d samples of pg_stat_activity over %v: max %d backends; "+
				"wake-up %v: %d connection attempts refused, slowest of 8 requests %v (deadline %v)",
				emptiedAfter.Round(time.Millisecond), idleLimit, samples, idlePart, seen,
				wakeTime, proxy.Refused(), slowest.Round(time.Millisecond), deadline)
		})
	}
}

// TestIdleSessionEnd57P05: a server that ends idle sessions itself
// (idle_session_timeout, as some providers set it) is routine: the
// sessions it ended are found by the look at the socket on checkout and
// replaced, counted as idle expiry, with no new trust epoch (the other
// idle connection is looked at, not probed), no stale discard and no
// orphan to end.
func TestIdleSessionEnd57P05(t *testing.T) {
	s := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"idle_session_timeout": "300ms"}})
	cfg, err := pgxadapter.ParseConfig(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	// Idle connections are handed out after a look at the socket, not
	// probed, unless a new trust epoch calls for a probe.
	cfg.Pool.ProbeAfterIdle = 10 * time.Second
	pool, err := pgxadapter.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	two := func() {
		a, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*pgxadapter.Conn{a, b} {
			if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			c.Release()
		}
	}
	two()
	time.Sleep(time.Second) // the server ends both sessions (57P05)
	for range 3 {
		var one int
		if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("after the server ended idle sessions: %v", err)
		}
	}
	two()
	st := pool.Stat()
	if st.MaxIdleDestroyCount() < 2 || st.ProbeCount() != 0 || st.StaleDiscardCount() != 0 || st.OrphansEndedCount() != 0 {
		t.Errorf("idle-ended %d (want 2+), probes %d, stale discards %d, orphans ended %d (want 0 each)",
			st.MaxIdleDestroyCount(), st.ProbeCount(), st.StaleDiscardCount(), st.OrphansEndedCount())
	}
	t.Logf("idle-ended %d, probes %d, stale discards %d, new connections %d", st.MaxIdleDestroyCount(), st.ProbeCount(), st.StaleDiscardCount(), st.NewConnsCount())
}
