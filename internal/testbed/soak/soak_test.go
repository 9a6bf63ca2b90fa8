package soak

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/adaptertest"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	pgtest.Main(m)
}

// The soak's shape. Five instances share the budget: three child
// processes (pgx, sql, pgx) and two pools in this process (pgx, sql) for
// the leak checks. With the 10% surge margin each gets 18/6 = 3
// connections, so a replacement starting while the old instance drains
// still fits.
const (
	budget       = 18
	maxInstances = 5
	children     = 3

	natIdle            = time.Second     // the NAT forgets flows idle this long
	maxConnIdle        = 2 * time.Second // the pool's idle limit (RUNPOOL_MAX_CONN_IDLE_TIME)
	serverIdleSession  = 4 * time.Second // RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT: reclaims NAT orphans
	drainTimeout       = 3 * time.Second
	reclaimWindow      = serverIdleSession + 3*time.Second // an orphan's longest life, with margin for load
	excessGrace        = 100 * time.Millisecond            // a closed session's backend takes a moment to leave pg_stat_activity
	defaultSoakLength  = 45 * time.Second
	maxConnectionsSoak = 60
)

// soak is one run: the server, the instances, the record of what callers
// saw, and the violations found.
type soak struct {
	t     *testing.T
	seed  uint64
	start time.Time
	srv   *pgtest.Server
	user  string // the role every instance uses
	rng   *rand.Rand

	mu         sync.Mutex
	nextID     int
	instances  []*instance
	nats       []*natPath
	outcomes   map[string]outcome
	classes    map[string]int
	faults     map[string]int
	events     []string
	violations int
	localNATs  []*natPath
	drains     int           // instances that drained cleanly after SIGTERM
	setup      time.Duration // from the start to the first fault
	// reportedKeys are ledger keys already reported as broken.
	reportedKeys map[string]bool
	exitChecks   sync.WaitGroup
}

// natPath is one instance's way to the server: its own NAT.
type natPath struct {
	name  string // the instance's application_name
	proxy *faultproxy.Proxy
	dsn   string
}

func (s *soak) newNAT(app string) (*natPath, error) {
	mode := faultproxy.Blackhole
	s.mu.Lock()
	if s.rng.IntN(2) == 0 {
		mode = faultproxy.Reset
	}
	s.mu.Unlock()
	// The NAT starts forgetting idle flows once the pool has opened (see
	// armed): a start-up slowed past natIdle by a loaded machine is not a
	// fault of the schedule's, and Open does not retry a broken dial.
	p, err := faultproxy.Start(faultproxy.Config{Target: s.srv.Addr(), Mode: mode})
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(p.Addr())
	u := s.srv.URLFor(s.user, "pw", s.user)
	u = strings.Replace(u, s.srv.Addr(), net.JoinHostPort(host, port), 1) + "&application_name=" + app
	n := &natPath{name: app, proxy: p, dsn: u}
	s.mu.Lock()
	s.nats = append(s.nats, n)
	s.mu.Unlock()
	return n, nil
}

// arm makes the NAT forget flows idle for natIdle from now on.
func (n *natPath) arm() { n.proxy.SetIdleTimeout(natIdle) }

// instanceEnv is the environment of every child: the budget and the
// timings, as a service on a serverless platform would set them.
func (s *soak) instanceEnv() []string {
	return []string{
		"RUNPOOL_BUDGET=" + strconv.Itoa(budget),
		"RUNPOOL_MAX_INSTANCES=" + strconv.Itoa(maxInstances),
		"RUNPOOL_MAX_CONN_IDLE_TIME=" + maxConnIdle.String(),
		"RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT=" + serverIdleSession.String(),
		"RUNPOOL_DRAIN_TIMEOUT=" + drainTimeout.String(),
		"RUNPOOL_PLATFORM=none",
		"RUNPOOL_BUDGET_SLOTS=" + budgetSlots(),
	}
}

// budgetSlots is RUNPOOL_BUDGET_SLOTS for every instance: off unless
// RUNPOOL_SOAK_SLOTS=advisory runs the soak with budget slots.
func budgetSlots() string {
	if v := os.Getenv("RUNPOOL_SOAK_SLOTS"); v != "" {
		return v
	}
	return runpool.BudgetSlotsOff
}

// inProcessConfig is instanceEnv's settings for the pools in this process.
func inProcessConfig() runpool.Config {
	return runpool.Config{
		Budget: budget, MaxInstances: maxInstances, MaxConnIdleTime: maxConnIdle,
		ServerIdleSessionTimeout: serverIdleSession, DrainTimeout: drainTimeout, Platform: "none",
		BudgetSlots: budgetSlots(), Logger: slog.New(slog.DiscardHandler),
	}
}

// violate reports a broken invariant, with the seed to replay it.
func (s *soak) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.violations++
	first := s.violations <= 20
	s.events = append(s.events, fmt.Sprintf("%7.3fs VIOLATION %s", time.Since(s.start).Seconds(), msg))
	s.mu.Unlock()
	if first { // a broken defence can produce thousands; the first ones tell
		s.t.Errorf("[seed %d, at %.1fs] %s\nreplay: RUNPOOL_SOAK_SEED=%d go test -run Soak ./internal/testbed/soak/",
			s.seed, time.Since(s.start).Seconds(), msg, s.seed)
	}
}

func (s *soak) event(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf("%7.3fs %s", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...)))
}

// record keeps what a caller saw; an error outside the documented ones
// is a violation at once.
func (s *soak) record(o outcome, who string) {
	s.mu.Lock()
	_, dup := s.outcomes[o.Key]
	s.outcomes[o.Key] = o
	s.classes[o.Class]++
	s.mu.Unlock()
	if dup {
		s.violate("%s: key %s reported twice", who, o.Key)
	}
	if o.Class == classBad {
		s.violate("%s: a caller saw an undocumented error (not its deadline, not a documented type): %s", who, o.Err)
	}
}

func soakLength(t *testing.T) time.Duration {
	v := os.Getenv("RUNPOOL_SOAK_DURATION")
	if v == "" {
		return defaultSoakLength
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("RUNPOOL_SOAK_DURATION=%q: want a positive Go duration such as 45s or 10m", v)
	}
	return d
}

func soakSeed(t *testing.T) uint64 {
	v := os.Getenv("RUNPOOL_SOAK_SEED")
	if v == "" {
		return uint64(time.Now().UnixNano())
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("RUNPOOL_SOAK_SEED=%q: want an unsigned integer", v)
	}
	return n
}

// TestSoak runs the pools under a seeded random schedule of faults and
// checks that every promise holds throughout and after the drain.
func TestSoak(t *testing.T) {
	leakBaseline := goleak.IgnoreCurrent()
	length, seed := soakLength(t), soakSeed(t)
	t.Logf("soak: seed %d, %v (replay: RUNPOOL_SOAK_SEED=%d RUNPOOL_SOAK_DURATION=%v go test -run Soak ./internal/testbed/soak/)",
		seed, length, seed, length)
	s := &soak{
		t: t, seed: seed, start: time.Now(),
		rng:      rand.New(rand.NewPCG(seed, 0x50a4)),
		outcomes: map[string]outcome{}, classes: map[string]int{}, faults: map[string]int{},
		reportedKeys: map[string]bool{},
	}
	t.Cleanup(func() {
		if t.Failed() {
			s.mu.Lock()
			tail := s.events[max(0, len(s.events)-40):]
			s.mu.Unlock()
			t.Logf("[seed %d] the last events before the end:\n%s", seed, strings.Join(tail, "\n"))
		}
	})
	s.srv = pgtest.Start(t, pgtest.Options{MaxConnections: maxConnectionsSoak})
	t.Cleanup(func() { // after a t.Fatal mid-run: no child outlives the test
		for _, inst := range s.snapshotInstances() {
			inst.kill()
		}
	})
	s.user = s.srv.CreateRole(t, -1)
	// The soak's NAT cannot drop the server's TCP keepalives (its own
	// kernel answers them), which is how a session orphaned during its
	// start-up, before the pool's SET of idle_session_timeout, ends in
	// production. The role's default stands in for that keepalive.
	s.srv.Exec(t, fmt.Sprintf("ALTER ROLE %s SET idle_session_timeout = %d",
		pgx.Identifier{s.user}.Sanitize(), serverIdleSession.Milliseconds()))
	filler := s.srv.CreateRole(t, -1)
	s.createLedger(t)
	t.Cleanup(func() {
		for _, n := range s.snapshotNATs() {
			n.proxy.Close()
		}
	})

	// The pools: children first, then the ones in this process.
	for i := range children {
		if _, err := s.startInstance(adaptertest.Adapters[i%len(adaptertest.Adapters)].Name); err != nil {
			t.Fatalf("[seed %d] %v", seed, err)
		}
	}
	stopLocal := make(chan struct{})
	local := s.startLocalPools(t, stopLocal)

	sampler := s.startBudgetSampler()
	s.setup = time.Since(s.start)
	s.event("set up in %v; faults begin", s.setup.Round(time.Millisecond))
	end := time.Now().Add(length)
	nextLedgerCheck := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		s.pause(400*time.Millisecond, 1600*time.Millisecond)
		s.runFault(t, filler)
		if time.Now().After(nextLedgerCheck) {
			s.checkLedger(t, false)
			nextLedgerCheck = time.Now().Add(10 * time.Second)
		}
	}
	s.event("faults stop")

	// The end: every instance gets SIGTERM and drains; the local pools
	// are shut down and closed; then nothing may be left.
	for _, inst := range s.runningInstances() {
		inst.terminate()
		s.watchExit(inst)
	}
	close(stopLocal)
	local.finish(t, s)
	s.exitChecks.Wait()
	s.waitNoBackends(t, "after every pool drained", "", reclaimWindow+5*time.Second)
	stats := sampler.stop()
	for _, n := range s.snapshotNATs() {
		n.proxy.Close()
	}
	leakErr := goleak.Find(leakBaseline,
		// The dedicated server's process watcher lives until its cleanup.
		goleak.IgnoreAnyFunction("github.com/runpool/runpool/internal/testbed/pgtest.(*Server).startProcess.func1"))
	if leakErr != nil {
		s.violate("goroutines leaked by the closed pools: %v", leakErr)
	}
	ledger := s.checkLedger(t, true)
	s.summary(t, length, stats, ledger, leakErr == nil, local)
}

func (s *soak) pause(lo, hi time.Duration) {
	s.mu.Lock()
	d := lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
	s.mu.Unlock()
	time.Sleep(d)
}

func (s *soak) snapshotNATs() []*natPath {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*natPath(nil), s.nats...)
}

func (s *soak) snapshotInstances() []*instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*instance(nil), s.instances...)
}

// superuser connects to the soak role's database as superuser.
func (s *soak) superuser(ctx context.Context) (*pgx.Conn, error) {
	u := s.srv.URLFor("postgres", "", s.user)
	return pgx.Connect(ctx, u)
}

func (s *soak) createLedger(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.srv.URLFor(s.user, "pw", s.user))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Unique keys, but no unique constraint: a doubled write must show as
	// two rows, not be turned into an error by the server.
	if _, err := conn.Exec(ctx, "CREATE TABLE ledger (k text NOT NULL, inst int NOT NULL, at timestamptz NOT NULL DEFAULT now()); CREATE INDEX ON ledger (k)"); err != nil {
		t.Fatal(err)
	}
}

// waitNoBackends polls until the role has no backend (of application
// app, when given) and reports what is left after limit.
func (s *soak) waitNoBackends(t *testing.T, when, app string, limit time.Duration) {
	t.Helper()
	left, err := s.pollNoBackends(app, limit)
	if err != nil || left != "" {
		s.violate("backends left %s (waited %v, past the server's reclaim window): %s%v", when, limit, left, errOrEmpty(err))
	}
}

func errOrEmpty(err error) any {
	if err == nil {
		return ""
	}
	return err
}

// pollNoBackends returns "" once no backend of the role (and app) is
// left, else a description of those still there at the limit.
func (s *soak) pollNoBackends(app string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	var lastErr error
	for {
		left, err := s.backendsOf(app)
		if err == nil && left == "" {
			return "", nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			return left, lastErr
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *soak) backendsOf(app string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := s.superuser(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT application_name, coalesce(state, ''), coalesce(left(query, 60), ''), extract(epoch FROM now() - backend_start)::float8
		FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend' AND ($2 = '' OR application_name = $2)`, s.user, app)
	var left []string
	var name, state, query string
	var age float64
	_, err = pgx.ForEachRow(rows, []any{&name, &state, &query, &age}, func() error {
		left = append(left, fmt.Sprintf("%s %s %.1fs %q", name, state, age, query))
		return nil
	})
	sort.Strings(left)
	return strings.Join(left, "; "), err
}

// summary prints the figures the lead quotes: the seed, the faults by
// kind, the callers' outcomes and every invariant's result.
func (s *soak) summary(t *testing.T, length time.Duration, b budgetStats, l ledgerStats, noLeak bool, lp *localPools) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var faults, classes []string
	total := 0
	for _, k := range faultKinds {
		faults = append(faults, fmt.Sprintf("%s %d", k.name, s.faults[k.name]))
		total += s.faults[k.name]
	}
	for _, c := range []string{classOK, classDeadline, classServer, classNotSent, classDial, classConnLost, classClosed, classBad} {
		classes = append(classes, fmt.Sprintf("%s %d", c, s.classes[c]))
	}
	verdict := func(ok bool) string {
		if ok {
			return "held"
		}
		return "BROKEN"
	}
	t.Logf(`soak summary (seed %d, %v of faults, %.0fs in all, %.0fs of it setting up):
  instances: %d in all (%d children, %d of them replacements started mid-run, + %d local pools); %d children drained cleanly after SIGTERM
  faults (%d): %s
  callers' outcomes (%d): %s
  ledger: %v
  budget %d: %d samples, peak %d backends, %d samples above the budget all within the NAT orphans' allowance (largest excess %d), %d samples while the server was down
  no backend left after every pool drained: checked; local pools' drains: %+v
  goroutine leaks after the local pools closed (goleak): %s
  violations: %d -> invariants %s`,
		s.seed, length, time.Since(s.start).Seconds(), s.setup.Seconds(),
		s.nextID+len(lp.dbs), s.nextID, s.nextID-children, len(lp.dbs), s.drains,
		total, strings.Join(faults, ", "),
		len(s.outcomes), strings.Join(classes, ", "),
		l,
		budget, b.Samples, b.Peak, b.OverBudget, b.PeakOrphans, b.Unreachable,
		lp.drains,
		map[bool]string{true: "none", false: "FOUND"}[noLeak],
		s.violations, verdict(s.violations == 0))
}
