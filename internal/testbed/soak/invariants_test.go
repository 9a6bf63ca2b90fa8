package soak

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// budgetStats is what the sampler saw of the role's backends.
type budgetStats struct {
	Samples     int
	Peak        int // most backends of the role at once
	OverBudget  int // samples above the budget, each within the NAT orphans' allowance
	PeakOrphans int // largest allowance used: flows the NATs forgot within the reclaim window
	Unreachable int // samples skipped while the server was down
}

type sampler struct {
	stopc chan struct{}
	done  chan budgetStats
}

func (sm *sampler) stop() budgetStats {
	close(sm.stopc)
	return <-sm.done
}

// startBudgetSampler reads pg_stat_activity every 20 ms. The role's
// backends may exceed the budget only by backends whose client the NAT
// cut off (orphans: the flows the NATs forgot within the reclaim window,
// which the server ends after idle_session_timeout); an excess beyond
// that lasting longer than excessGrace is a violation.
func (s *soak) startBudgetSampler() *sampler {
	sm := &sampler{stopc: make(chan struct{}), done: make(chan budgetStats, 1)}
	type mark struct {
		at      time.Time
		dropped int
	}
	go func() {
		var st budgetStats
		var history []mark
		var conn *pgx.Conn
		var over time.Time
		reported := false
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
			sm.done <- st
		}()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sm.stopc:
				return
			case <-tick.C:
			}
			now := time.Now()
			dropped := 0
			for _, n := range s.snapshotNATs() {
				dropped += n.proxy.Dropped()
			}
			history = append(history, mark{now, dropped})
			for len(history) > 1 && now.Sub(history[1].at) > reclaimWindow {
				history = history[1:]
			}
			orphans := dropped - history[0].dropped
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if conn == nil || conn.IsClosed() {
				var err error
				if conn, err = s.superuser(ctx); err != nil {
					conn = nil
					cancel()
					st.Unreachable++
					continue
				}
			}
			var n int
			err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE usename = $1 AND backend_type = 'client backend'`, s.user).Scan(&n)
			cancel()
			if err != nil {
				conn.Close(context.Background())
				conn = nil
				st.Unreachable++
				continue
			}
			st.Samples++
			st.Peak = max(st.Peak, n)
			if n > budget {
				st.OverBudget++
				st.PeakOrphans = max(st.PeakOrphans, n-budget)
			}
			if n <= budget+orphans {
				over, reported = time.Time{}, false
				continue
			}
			if over.IsZero() {
				over = now
			}
			if now.Sub(over) >= excessGrace && !reported {
				reported = true
				left, _ := s.backendsOf("")
				s.violate("budget: the role has %d backends, over the budget of %d plus %d NAT orphans, for %v: %s",
					n, budget, orphans, now.Sub(over).Round(time.Millisecond), left)
			}
		}
	}()
	return sm
}

// ledgerStats is what the ledger check found.
type ledgerStats struct {
	Rows, Acked, NotRun, Unknown, UnknownLanded int
	Problems                                    int // keys breaking an invariant
}

func (l ledgerStats) String() string {
	return fmt.Sprintf("%d rows; %d acknowledged, %d failed before running, %d with unknown outcome (%d of those landed); %d keys doubled, lost or present though refused",
		l.Rows, l.Acked, l.NotRun, l.Unknown, l.UnknownLanded, l.Problems)
}

// checkLedger compares the ledger with what callers saw: every
// acknowledged INSERT present exactly once, none that provably did not run
// present, no row twice, and at the end no row that no caller heard of.
// Outcomes are read before the table, so an acknowledged row is already
// committed when the table is read.
func (s *soak) checkLedger(t *testing.T, final bool) ledgerStats {
	t.Helper()
	s.mu.Lock()
	seen := make(map[string]outcome, len(s.outcomes))
	for k, o := range s.outcomes {
		seen[k] = o
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rows map[string]int
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the server may be restarting
		if rows, err = s.readLedger(ctx); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		s.violate("ledger: cannot read it: %v", err)
		return ledgerStats{}
	}
	var st ledgerStats
	problems := map[string]string{} // by key
	for k, n := range rows {
		st.Rows += n
		o, known := seen[k]
		switch {
		case n > 1:
			saw := "its caller has not heard back yet"
			if known {
				saw = "its caller saw " + o.Class
				if o.Err != "" {
					saw += ": " + o.Err
				}
			}
			problems[k] = fmt.Sprintf("key %s written %d times (%s)", k, n, saw)
		case !known && final:
			problems[k] = fmt.Sprintf("key %s is in the ledger but no caller heard back about it", k)
		case known && o.Class != classOK && o.NotRun:
			problems[k] = fmt.Sprintf("key %s is in the ledger but its caller was told it did not run: %s: %s", k, o.Class, o.Err)
		}
	}
	for k, o := range seen {
		switch {
		case o.Class == classOK:
			st.Acked++
			if rows[k] == 0 {
				problems[k] = fmt.Sprintf("key %s was acknowledged but is not in the ledger (a lost write)", k)
			}
		case o.NotRun:
			st.NotRun++
		default:
			st.Unknown++
			if rows[k] > 0 {
				st.UnknownLanded++
			}
		}
	}
	st.Problems = len(problems)
	var fresh []string // each key is reported once, by the first check that sees it
	s.mu.Lock()
	for k, p := range problems {
		// The final check lists them all, with the outcomes callers saw
		// by the end; a periodic one only those not reported before.
		if final || !s.reportedKeys[k] {
			s.reportedKeys[k] = true
			fresh = append(fresh, p)
		}
	}
	s.mu.Unlock()
	sort.Strings(fresh)
	if n := len(fresh); n > 0 {
		if n > 10 {
			fresh = append(fresh[:10], fmt.Sprintf("... and %d more", n-10))
		}
		what := "periodic check: %d new keys break"
		if final {
			what = "final check: %d keys break"
		}
		s.violate("ledger ("+what+" the write invariants):\n  %s", n, strings.Join(fresh, "\n  "))
	}
	s.event("ledger check: %v", st)
	return st
}

func (s *soak) readLedger(ctx context.Context) (map[string]int, error) {
	conn, err := s.superuser(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "SELECT k, count(*) FROM ledger GROUP BY k")
	out := map[string]int{}
	var k string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&k, &n}, func() error { out[k] = n; return nil })
	return out, err
}
