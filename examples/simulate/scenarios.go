package main

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/runpool/runpool/internal/testbed/faultproxy"
)

// table is one scenario's result: a row per pool.
type table struct {
	name  string // as -only names it
	title string
	setup string
	rows  []*row
	// The bars runpool's rows are held to besides 100% served and no
	// leak: in more than half of the bursts after a freeze, p99 within 2x
	// a cold burst of the same size measured in that burst's own turn
	// (row.bursts; latencyBar), and peak backends within a budget
	// (budget > 0).
	latencyBar bool
	budget     int
}

// row is one pool's result in one scenario.
type row struct {
	pool   poolKind
	role   string
	srv    *server
	reqs   []request // the requests the scenario counts
	peak   int
	left   int       // backends LeakWait after the last instance exited
	leaked int       // backends still there Reclaim after it exited
	exited time.Time // when the last instance was gone
	err    error     // the row could not run
	// For the chart: when the row began, its warm-up, its freezes.
	start   time.Time
	warm    []request
	freezes [][2]time.Time
	nat     *faultproxy.Proxy // kept open to the end: forgotten flows dangle
	// bursts: each burst after a freeze, with its yardstick.
	bursts []freezeBurst
}

// freezeBurst is one burst after a freeze as the latency bar reads it: its p99
// and its yardstick, a cold burst of the same size measured in the same
// turn (the slower of just before the thaw and just after the burst).
type freezeBurst struct {
	p99, cold time.Duration
}

// env is what the scenarios run on.
type env struct {
	s      settings
	faults map[faultproxy.Mode]*server // freezes (sigterm on the reset one): room for every dangling backend
	small  *server                     // max_connections = s.ServerMax
	large  *server                     // max_connections = s.BudgetServerMax

	// burst is held by the freeze scenarios' instance that is thawed and
	// bursting, and until the server has settled after it (server.settle),
	// so that no burst meets another's: an instance waiting for it stays
	// frozen (CPU is what a burst after a freeze competes for; on a
	// platform each instance has its own).
	burst sync.Mutex
}

// forEachPool runs f for every selected pool that runs in the scenario,
// at once when parallel (each starting stagger after the previous), else
// one after another.
func (e *env) forEachPool(scenario string, parallel bool, stagger time.Duration, f func(k poolKind, r *row)) []*row {
	ks := e.s.poolsIn(scenario)
	rows := make([]*row, len(ks))
	var wg sync.WaitGroup
	for i, k := range ks {
		rows[i] = &row{pool: k}
		run := func() {
			defer wg.Done()
			rows[i].start = time.Now()
			f(k, rows[i])
		}
		wg.Add(1)
		if parallel {
			if i > 0 {
				time.Sleep(stagger)
			}
			go run()
		} else {
			run()
		}
	}
	wg.Wait()
	return rows
}

// finish ends the instances (each gets until exit to close its pool,
// then is killed, as a platform does) and measures what they left on
// the server.
func (e *env) finish(r *row, srv *server, insts []*instance, exit time.Duration) {
	stopAll(insts, exit)
	e.count(r, srv)
}

// stopAll stops the instances at once and waits for them.
func stopAll(insts []*instance, exit time.Duration) {
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Add(1)
		go func() { defer wg.Done(); in.stop(exit) }()
	}
	wg.Wait()
}

// count records, once r's instances exited, what they left on srv.
func (e *env) count(r *row, srv *server) {
	r.exited = time.Now()
	r.left = srv.backendsAfter(r.role, e.s.LeakWait)
	r.peak = srv.peakOf(r.role)
}

// runpoolEnv is how a user configures runpool: the server, the instance
// count and the budget (0: runpool reads it from the server). The slots
// row also gets RUNPOOL_BUDGET_SLOTS=advisory, which needs RUNPOOL_BUDGET:
// where the other rows read the budget from the server, it gets what the
// server allows the service (allows).
func runpoolEnv(k poolKind, dsn string, instances, budget, allows int) map[string]string {
	m := map[string]string{"DATABASE_URL": dsn, "RUNPOOL_MAX_INSTANCES": strconv.Itoa(instances)}
	if k.slots {
		m["RUNPOOL_BUDGET_SLOTS"] = "advisory"
		if budget == 0 {
			budget = allows
		}
	}
	if budget > 0 {
		m["RUNPOOL_BUDGET"] = strconv.Itoa(budget)
	}
	return m
}

// scaledIdleEnv is runpool's idle limit scaled with the simulated NAT.
// runpool's default (45 s) sits below every documented middlebox timeout
// (the tightest about 60 s to 4 min); the simulation shrinks the NAT's to
// seconds, so it shrinks the idle limit with it, to what pgxpool's hand
// tuning gets: half the NAT's. An explicit RUNPOOL_MAX_CONN_IDLE_TIME in
// the simulator's environment wins.
func (e *env) scaledIdleEnv(m map[string]string) map[string]string {
	if !e.s.RunpoolUnscaled && os.Getenv("RUNPOOL_MAX_CONN_IDLE_TIME") == "" {
		m["RUNPOOL_MAX_CONN_IDLE_TIME"] = (e.s.NATIdle / 2).String()
	}
	return m
}

// idleNote says how runpool's idle limit was set, for the table's setup.
func (e *env) idleNote() string {
	switch {
	case os.Getenv("RUNPOOL_MAX_CONN_IDLE_TIME") != "":
		return "; runpool: RUNPOOL_MAX_CONN_IDLE_TIME=" + os.Getenv("RUNPOOL_MAX_CONN_IDLE_TIME")
	case e.s.RunpoolUnscaled:
		return "; runpool's idle limit at its default, 45s (-runpool-unscaled)"
	}
	return fmt.Sprintf("; runpool's idle limit scaled with the NAT as time is, 45s -> %v (as pgxpool's hand tuning; -runpool-unscaled to keep 45s)", e.s.NATIdle/2)
}

// freeze: one instance per pool behind a NAT that forgets flows idle
// NATIdle (silently, or with a reset), frozen Freeze before each burst.
// The pools run at once, their bursts one at a time (env.burst).
func (e *env) freeze(mode faultproxy.Mode) *table {
	s := e.s
	srv := e.faults[mode]
	t := &table{
		name:  mode.String(),
		title: fmt.Sprintf("Freeze behind a NAT %s", map[faultproxy.Mode]string{faultproxy.Blackhole: "black hole", faultproxy.Reset: "reset"}[mode]),
		setup: fmt.Sprintf("the NAT forgets flows idle %v (%s); one instance per pool, frozen %v (SIGSTOP) before each of %d bursts of %d concurrent %v queries, %v deadline",
			s.NATIdle, map[faultproxy.Mode]string{faultproxy.Blackhole: "later packets vanish", faultproxy.Reset: "later packets draw a reset"}[mode],
			s.Freeze, s.Bursts, s.Burst, s.Query, s.Deadline) + e.idleNote(),
	}
	t.latencyBar = true
	// The yardstick's path: the same server through a proxy that forgets
	// nothing.
	pass, err := faultproxy.Start(faultproxy.Config{Target: srv.Addr()})
	if err != nil {
		t.rows = []*row{{err: err}}
		return t
	}
	defer pass.Close()
	passDSN := srv.dsn("postgres", pass.Addr())
	stagger := s.Freeze / time.Duration(2*max(1, len(s.poolsIn(t.name))))
	t.rows = e.forEachPool(t.name, true, stagger, func(k poolKind, r *row) {
		if r.role, r.err = srv.createRole(t.name, k.name); r.err != nil {
			return
		}
		r.srv = srv
		if r.nat, r.err = faultproxy.Start(faultproxy.Config{Target: srv.Addr(), Mode: mode, IdleTimeout: s.NATIdle}); r.err != nil {
			return
		}
		dsn := srv.dsn(r.role, r.nat.Addr())
		in, err := startInstance(instanceSpec{Pool: k.name, DSN: dsn, Env: e.scaledIdleEnv(runpoolEnv(k, dsn, 1, 0, srv.allows)), NATIdle: s.NATIdle, Grace: s.Grace})
		if r.err = err; err != nil {
			return
		}
		c := command{N: s.Burst, Query: s.Query, Deadline: s.Deadline}
		e.burst.Lock()
		r.warm = in.burst(c)
		srv.settle()
		e.burst.Unlock()
		for range s.Bursts {
			from := time.Now()
			var before time.Duration
			var errBefore error
			in.freeze(s.Freeze, &e.burst, func() { before, errBefore = coldBurst(passDSN, s.Burst, s.Query) })
			r.freezes = append(r.freezes, [2]time.Time{from, time.Now()})
			got := in.burst(c)
			srv.settle()
			after, errAfter := coldBurst(passDSN, s.Burst, s.Query)
			e.burst.Unlock()
			if err := cmp.Or(errBefore, errAfter); err != nil {
				r.err = err
				break
			}
			r.bursts = append(r.bursts, freezeBurst{p99: summarize(got).p99, cold: max(before, after)})
			if os.Getenv(debugEnv) != "" {
				var lats []time.Duration
				for _, q := range got {
					lats = append(lats, q.Lat.Round(100*time.Microsecond))
				}
				slices.Sort(lats)
				fmt.Fprintf(os.Stderr, "%s %s burst: %v; cold burst p99 %v before, %v after\n", t.name, k.name, lats, before, after)
			}
			r.reqs = append(r.reqs, got...)
		}
		// The instance stops in a turn of its own, like a burst: a pool's
		// shutdown (pgxpool's Close sends cancel requests on new
		// connections, and waits 15 s on a black-holed one) slowed
		// whichever pool's burst ran beside it, 2-4x for that burst.
		e.burst.Lock()
		stopAll([]*instance{in}, s.Deadline)
		srv.settle()
		e.burst.Unlock()
		e.count(r, srv)
	})
	return t
}

// startAll starts n instances of a pool at once.
func startAll(n int, spec instanceSpec) ([]*instance, error) {
	insts := make([]*instance, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range insts {
		wg.Add(1)
		go func() { defer wg.Done(); insts[i], errs[i] = startInstance(spec) }()
	}
	wg.Wait()
	var started []*instance
	var first error
	for i, in := range insts {
		if in != nil {
			started = append(started, in)
		} else if first == nil {
			first = errs[i]
		}
	}
	return started, first
}

// burstAll runs the same burst in every instance at once.
func burstAll(insts []*instance, c command) []request {
	var mu sync.Mutex
	var all []request
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := in.burst(c)
			mu.Lock()
			all = append(all, rs...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}

// scaleOut: Instances instances per pool run Rounds rounds of Load
// concurrent LoadQuery queries at once against srv. budget > 0 is the
// service's budget given to runpool; otherwise runpool reads it from the
// server. Hand-tuned pools get budget / instances each: static
// division. One pool at a time: they would otherwise take each other's
// slots.
func (e *env) scaleOut(name string, srv *server, budget int) *table {
	s := e.s
	t := &table{name: name}
	serverAllows := srv.allows
	share := budget
	if budget > 0 {
		t.title = fmt.Sprintf("Scale-out within a budget of %d", budget)
		t.setup = fmt.Sprintf("max_connections = %d, RUNPOOL_BUDGET = %d; ", srv.maxConns, budget)
		t.budget = budget
	} else {
		t.title = "Scale-out over a small server"
		t.setup = fmt.Sprintf("max_connections = %d (%d for the service, budget read from the server); ", srv.maxConns, serverAllows)
		t.budget = serverAllows
		share = serverAllows
	}
	t.setup += fmt.Sprintf("%d instances per pool each run %d rounds of %d concurrent %v queries, %v deadline; ",
		s.Instances, s.Rounds, s.Load, s.LoadQuery, s.LoadDeadline) + staticNote(share, s.Instances)
	t.rows = e.forEachPool(name, false, 0, func(k poolKind, r *row) {
		if r.role, r.err = srv.createRole(name, k.name); r.err != nil {
			return
		}
		r.srv = srv
		dsn, err := e.far(r, srv)
		if r.err = err; err != nil {
			return
		}
		insts, err := startAll(s.Instances, instanceSpec{Pool: k.name, DSN: dsn, Env: runpoolEnv(k, dsn, s.Instances, budget, serverAllows),
			MaxConns: max(1, share/s.Instances), NATIdle: s.NATIdle, Grace: s.Grace})
		if r.err = err; err == nil {
			for range s.Rounds {
				r.reqs = append(r.reqs, burstAll(insts, command{N: s.Load, Query: s.LoadQuery, Deadline: s.LoadDeadline})...)
			}
		}
		e.finish(r, srv, insts, s.Grace)
	})
	return t
}

// far returns the DSN r's instances reach srv at in a budget scenario:
// srv itself, or with NetLatency a proxy that adds it (r.nat, closed by
// reclaimCheck).
func (e *env) far(r *row, srv *server) (string, error) {
	if e.s.NetLatency <= 0 {
		return srv.dsn(r.role, ""), nil
	}
	var err error
	if r.nat, err = faultproxy.Start(faultproxy.Config{Target: srv.Addr(), Latency: e.s.NetLatency / 2}); err != nil {
		return "", err
	}
	return srv.dsn(r.role, r.nat.Addr()), nil
}

// staticNote says what the rows tuned by hand get in a budget scenario.
func staticNote(budget, instances int) string {
	return fmt.Sprintf("static division (the rows tuned by hand): %d connections per instance", max(1, budget/instances))
}

// hot: Instances instances per pool on srv; each runs one query, then
// only the first Hot work, at once: Rounds rounds of Load concurrent
// queries each while the others idle. budget is as for scaleOut. One pool
// at a time.
func (e *env) hot(name string, srv *server, budget int) *table {
	s := e.s
	title := "One hot instance, the others idle"
	if s.Hot > 1 {
		title = fmt.Sprintf("%d hot instances, the others idle", s.Hot)
	}
	t := &table{name: name, title: title, budget: budget, setup: fmt.Sprintf("max_connections = %d", srv.maxConns)}
	if budget > 0 {
		t.title += fmt.Sprintf(", within a budget of %d", budget)
		t.setup += fmt.Sprintf(", RUNPOOL_BUDGET = %d", budget)
	} else {
		t.budget = srv.allows
	}
	who, whose := "one runs", "its"
	if s.Hot > 1 {
		who, whose = fmt.Sprintf("%d each run", s.Hot), "their"
	}
	t.setup += fmt.Sprintf("; %d instances per pool each run one query, then %s %d rounds of %d concurrent %v queries (%v deadline) while %d idle; %s requests are counted; ",
		s.Instances, who, s.Rounds, s.Load, s.LoadQuery, s.LoadDeadline, s.Instances-s.Hot, whose) + staticNote(t.budget, s.Instances)
	t.rows = e.forEachPool(name, false, 0, func(k poolKind, r *row) {
		if r.role, r.err = srv.createRole(name, k.name); r.err != nil {
			return
		}
		r.srv = srv
		dsn, err := e.far(r, srv)
		if r.err = err; err != nil {
			return
		}
		insts, err := startAll(s.Instances, instanceSpec{Pool: k.name, DSN: dsn, Env: runpoolEnv(k, dsn, s.Instances, budget, srv.allows),
			MaxConns: max(1, t.budget/s.Instances), NATIdle: s.NATIdle, Grace: s.Grace})
		if r.err = err; err == nil {
			burstAll(insts, command{N: 1, Query: s.LoadQuery, Deadline: s.LoadDeadline})
			for range s.Rounds {
				r.reqs = append(r.reqs, burstAll(insts[:s.Hot], command{N: s.Load, Query: s.LoadQuery, Deadline: s.LoadDeadline})...)
			}
		}
		e.finish(r, srv, insts, s.Grace)
	})
	return t
}

// sigterm: one instance per pool runs Load concurrent TermQuery queries
// and gets SIGTERM while they run; the platform kills it after Grace.
// The pools run at once (each its own role; the server has room).
func (e *env) sigterm() *table {
	s := e.s
	t := &table{name: "sigterm", title: "SIGTERM under load",
		setup: fmt.Sprintf("one instance per pool runs %d concurrent %v queries (%v deadline); SIGTERM %v after the first starts on the server, SIGKILL %v later if still alive",
			s.Load, s.TermQuery, s.LoadDeadline, s.TermQuery/4, s.Grace)}
	t.rows = e.forEachPool(t.name, true, 0, func(k poolKind, r *row) {
		srv := e.faults[faultproxy.Reset]
		if r.role, r.err = srv.createRole("sigterm", k.name); r.err != nil {
			return
		}
		r.srv = srv
		dsn := srv.dsn(r.role, "")
		in, err := startInstance(instanceSpec{Pool: k.name, DSN: dsn, Env: runpoolEnv(k, dsn, 1, 0, srv.allows), NATIdle: s.NATIdle, Grace: s.Grace})
		if r.err = err; err != nil {
			return
		}
		c := command{N: s.Load, Query: s.TermQuery, Deadline: s.LoadDeadline}
		// One pool's load at a time, as the freeze bursts: run at once, the
		// pools' 120 queries and their dials shared two cores and one
		// server, and a pool's result said as much about the others' as
		// about its own. The instances start, and their leftovers are
		// counted, at once.
		e.burst.Lock()
		done := make(chan []request, 1)
		if err := in.send(c); err != nil {
			done <- lost(c.N, err)
		} else {
			go func() { done <- in.collect(c.N) }()
			waitFor(5*time.Second, func() bool { return srv.activeOf(r.role) > 0 })
			time.Sleep(s.TermQuery / 4)
			in.cmd.Process.Signal(syscall.SIGTERM)
		}
		r.reqs = <-done
		in.wait(s.Grace)
		srv.settle()
		e.burst.Unlock()
		r.exited = time.Now()
		r.left = srv.backendsAfter(r.role, s.LeakWait)
		r.peak = srv.peakOf(r.role)
	})
	return t
}

// waitFor polls cond until it holds or d passed.
func waitFor(d time.Duration, cond func() bool) {
	for deadline := time.Now().Add(d); !cond() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// reclaimCheck counts, for every row, the backends still there Reclaim
// after its instances exited (waiting for the latest such moment): a
// backend the server has not ended by then is leaked. Then it closes the
// NAT proxies, whose forgotten flows held those backends.
func (e *env) reclaimCheck(tables []*table) {
	for _, t := range tables {
		for _, r := range t.rows {
			if r.srv == nil || r.exited.IsZero() {
				continue
			}
			r.leaked = r.srv.backendsAfter(r.role, time.Until(r.exited.Add(e.s.Reclaim)))
			if r.leaked > 0 && os.Getenv(debugEnv) != "" {
				r.srv.describeBackends(os.Stderr, r.role)
			}
		}
	}
	for _, t := range tables {
		for _, r := range t.rows {
			if r.nat != nil {
				r.nat.Close()
			}
		}
	}
}
