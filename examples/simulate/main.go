// Command simulate shows, in one run, how today's Go PostgreSQL pools
// fare on a serverless platform and how runpool fares in their place.
//
//	go run ./examples/simulate [flags]
//
// It starts throwaway PostgreSQL servers, a fault-injecting TCP proxy
// that forgets idle flows as a NAT gateway does, and instances: child
// processes of this program, each holding one pool, that it freezes with
// SIGSTOP as a platform freezes an idle instance, stops with SIGTERM, and
// drives with bursts of concurrent queries. The scenarios:
//
//   - blackhole, reset: an instance frozen longer than the NAT's idle
//     timeout, then a burst; the NAT drops the forgotten flow's packets
//     silently (Cloud NAT) or answers them with a reset (AWS NAT gateway);
//   - scale: many instances bursting at once against a server whose
//     max_connections is small;
//   - budget: the same against a larger server, with a budget for the
//     whole service that the instances together must not exceed;
//   - hot: one busy instance while the others idle;
//   - hot-budget (only when -only names it): hot against the larger
//     server, within the budget;
//   - sigterm: an instance stopped under load.
//
// The pools: pgxpool and database/sql (pgx's stdlib driver) with their
// defaults and tuned by hand as the incident write-ups advise (in the
// budget scenarios each instance gets budget / instances connections:
// static division), and runpool through both adapters, configured from
// the environment as a user would (RUNPOOL_BUDGET, RUNPOOL_MAX_INSTANCES,
// defaults otherwise; RUNPOOL_* variables set when running the simulator
// reach runpool's instances too). The slots rows, runpool-slots
// (pgxadapter) and runpool-sql-slots (sqladapter), run only when -pools
// names them (-only slots names the first) and only in the budget
// scenarios; they add RUNPOOL_BUDGET_SLOTS=advisory, and under each budget
// scenario's table their p99 and p50 are printed as ratios to static
// division's (pgxpool tuned by hand). Each pool logs in as a role of its own, so the tables count its
// backends on the server: the peak while the scenario ran, those left
// -leak-wait after its instances exited, and those still there -reclaim
// after it (leaked: the server never ended them).
//
// It prints one table per scenario and checks runpool's rows against the
// bar runpool holds itself to (every request served; after a freeze, in more than
// half of the bursts, p99 within 2x a cold burst of the same size
// measured in the burst's own turn, so that a loaded machine moves the bar with
// the figures and one stalled burst does not decide the row; peak
// backends within the budget; nothing leaked), the slots rows too when
// they run, exiting 1 when a row misses it.
// With -svg it also draws the latency of every request around each freeze.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runpool/runpool/internal/testbed/faultproxy"
)

// settings are every timing and size of a run.
type settings struct {
	Freeze, NATIdle, Query, Deadline   time.Duration
	Burst, Bursts                      int
	Instances, Rounds, Load            int
	Hot                                int // busy instances in hot and hot-budget
	LoadQuery, LoadDeadline, TermQuery time.Duration
	// NetLatency is the round trip added between the instances and the
	// server in the budget scenarios (0: none).
	NetLatency                         time.Duration
	ServerMax, Budget, BudgetServerMax int
	Grace, LeakWait, Reclaim           time.Duration
	Scenarios                          []string
	Pools                              []poolKind
	SVG                                string
	// RunpoolUnscaled runs runpool's rows of the freeze scenarios with
	// its idle limit unscaled (45 s, above the simulated NAT's 2 s).
	RunpoolUnscaled bool
}

// scenarios in the order they run.
var scenarios = []string{"blackhole", "reset", "scale", "budget", "hot", "hot-budget", "sigterm"}

// defaultScenarios run when -only is not given: all but hot-budget.
var defaultScenarios = []string{"blackhole", "reset", "scale", "budget", "hot", "sigterm"}

// budgetScenarios are those where the service has a budget: the only
// ones the slots row runs in, and what -only slots selects.
var budgetScenarios = []string{"scale", "budget", "hot", "hot-budget"}

func main() {
	if spec := os.Getenv(instanceEnv); spec != "" {
		os.Exit(runInstance(spec))
	}
	s, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "simulate:", err)
		os.Exit(2)
	}
	_, fails, err := run(context.Background(), s, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "simulate:", err)
		os.Exit(1)
	}
	if len(fails) > 0 {
		os.Exit(1)
	}
}

func parseFlags(fs *flag.FlagSet, args []string) (settings, error) {
	var s settings
	fs.DurationVar(&s.Freeze, "freeze", 3*time.Second, "how long an instance is frozen (SIGSTOP) before each burst")
	fs.DurationVar(&s.NATIdle, "nat-idle", 2*time.Second, "the NAT forgets flows idle this long")
	fs.IntVar(&s.Burst, "burst", 16, "concurrent queries per burst after a freeze")
	fs.IntVar(&s.Bursts, "bursts", 4, "freezes (each followed by a burst) per pool")
	fs.DurationVar(&s.Query, "query", 5*time.Millisecond, "query time in the freeze scenarios")
	fs.DurationVar(&s.Deadline, "deadline", 2*time.Second, "deadline of each request in the freeze scenarios")
	fs.IntVar(&s.Instances, "instances", 10, "instances per pool in the scale, budget, hot and hot-budget scenarios")
	fs.IntVar(&s.Hot, "hot", 1, "instances that work in the hot and hot-budget scenarios while the others idle")
	fs.IntVar(&s.Rounds, "rounds", 3, "rounds of load in the scale, budget, hot and hot-budget scenarios")
	fs.IntVar(&s.Load, "load", 20, "concurrent queries per instance and round (and in sigterm)")
	fs.DurationVar(&s.LoadQuery, "load-query", 50*time.Millisecond, "query time in the scale, budget, hot and hot-budget scenarios")
	fs.DurationVar(&s.LoadDeadline, "load-deadline", 5*time.Second, "deadline of each request in the scale, budget, hot, hot-budget and sigterm scenarios")
	fs.DurationVar(&s.NetLatency, "net-latency", 0, "round trip added between the instances and the server in the scale, budget, hot and hot-budget scenarios, as a server farther away (half each way, on every message)")
	fs.DurationVar(&s.TermQuery, "term-query", time.Second, "query time in the sigterm scenario")
	fs.IntVar(&s.ServerMax, "server-max", 25, "max_connections of the small server (scale, hot)")
	fs.IntVar(&s.Budget, "budget", 25, "the service's connection budget in the budget and hot-budget scenarios")
	fs.IntVar(&s.BudgetServerMax, "budget-server-max", 100, "max_connections of the server in the budget and hot-budget scenarios")
	fs.DurationVar(&s.Grace, "grace", 10*time.Second, "from SIGTERM (or the end of input) to SIGKILL, as Cloud Run's grace period")
	fs.DurationVar(&s.LeakWait, "leak-wait", 3*time.Second, "count the backends left this long after the instances exit")
	fs.DurationVar(&s.Reclaim, "reclaim", 60*time.Second, "backends still there this long after the instances exit are leaked (runpool's server-side reclaim ends them within 57s by default)")
	only := fs.String("only", "", "comma-separated scenarios to run (default "+strings.Join(defaultScenarios, ",")+"; also hot-budget): "+
		"freeze means blackhole,reset; slots means "+strings.Join(budgetScenarios, ",")+" with the rows "+strings.Join(slotsPools, ",")+" unless -pools is given")
	poolList := fs.String("pools", "", "comma-separated pools (default all but the slots rows runpool-slots and runpool-sql-slots, which run only in "+strings.Join(budgetScenarios, ",")+"): "+poolNames())
	fs.BoolVar(&s.RunpoolUnscaled, "runpool-unscaled", false, "freeze scenarios: leave runpool's idle limit at its default (45s) instead of scaling it with the NAT's idle timeout as the simulation scales time (nat-idle/2, as pgxpool's hand tuning)")
	fs.StringVar(&s.SVG, "svg", "", "write a chart of latency over time around each freeze to this SVG file")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	s.Scenarios = defaultScenarios
	s.Pools = defaultPools()
	if *only != "" {
		var named []string
		for _, n := range strings.Split(*only, ",") {
			switch n = strings.TrimSpace(n); {
			case n == "freeze":
				named = append(named, "blackhole", "reset")
			case n == "slots":
				named = append(named, budgetScenarios...)
				s.Pools = nil
				for _, p := range slotsPools {
					k, _ := poolByName(p)
					s.Pools = append(s.Pools, k)
				}
			case slices.Contains(scenarios, n):
				named = append(named, n)
			default:
				return s, fmt.Errorf("-only: unknown scenario %q (known: %s, freeze, slots)", n, strings.Join(scenarios, ","))
			}
		}
		// In the order they run, each once.
		s.Scenarios = slices.DeleteFunc(slices.Clone(scenarios), func(n string) bool { return !slices.Contains(named, n) })
	}
	if *poolList != "" {
		s.Pools = nil
		for _, n := range strings.Split(*poolList, ",") {
			k, ok := poolByName(strings.TrimSpace(n))
			if !ok {
				return s, fmt.Errorf("-pools: unknown pool %q (known: %s)", n, poolNames())
			}
			s.Pools = append(s.Pools, k)
		}
	}
	for name, v := range map[string]int{"burst": s.Burst, "bursts": s.Bursts, "instances": s.Instances, "hot": s.Hot, "rounds": s.Rounds,
		"load": s.Load, "server-max": s.ServerMax, "budget": s.Budget, "budget-server-max": s.BudgetServerMax} {
		if v < 1 {
			return s, fmt.Errorf("-%s must be at least 1", name)
		}
	}
	for name, v := range map[string]time.Duration{"freeze": s.Freeze, "nat-idle": s.NATIdle, "query": s.Query, "deadline": s.Deadline,
		"load-query": s.LoadQuery, "load-deadline": s.LoadDeadline, "term-query": s.TermQuery, "grace": s.Grace} {
		if v <= 0 {
			return s, fmt.Errorf("-%s must be positive", name)
		}
	}
	if !slices.ContainsFunc(s.Scenarios, func(n string) bool { return len(s.poolsIn(n)) > 0 }) {
		return s, fmt.Errorf("-pools: none of %s runs in %s (the slots rows run only in %s)",
			poolNamesOf(s.Pools), strings.Join(s.Scenarios, ","), strings.Join(budgetScenarios, ","))
	}
	if s.Hot > s.Instances {
		return s, fmt.Errorf("-hot %d exceeds -instances %d", s.Hot, s.Instances)
	}
	if s.NetLatency < 0 {
		return s, errors.New("-net-latency must not be negative")
	}
	if s.ServerMax <= 3 || s.BudgetServerMax <= 3 {
		return s, errors.New("-server-max and -budget-server-max must exceed the 3 superuser_reserved_connections")
	}
	return s, nil
}

// run runs the selected scenarios, printing each table to w as it is
// done, and returns the tables and runpool's misses of the bar.
func run(ctx context.Context, s settings, w io.Writer) ([]*table, []string, error) {
	start := time.Now()
	// want: one of the scenarios is selected and has a row to run.
	want := func(n ...string) bool {
		return slices.ContainsFunc(n, func(n string) bool { return slices.Contains(s.Scenarios, n) && len(s.poolsIn(n)) > 0 })
	}
	e := &env{s: s, faults: map[faultproxy.Mode]*server{}}
	// Room for every backend a forgotten flow leaves dangling until -reclaim.
	faultsMax := len(s.Pools)*(s.Bursts+1)*s.Burst + s.Burst + 20
	var blackhole, reset *server
	servers := []struct {
		need bool
		max  int
		dst  **server
	}{
		{want("blackhole"), faultsMax, &blackhole},
		{want("reset", "sigterm"), faultsMax + len(s.Pools)*s.Load, &reset},
		{want("scale", "hot"), s.ServerMax, &e.small},
		{want("budget", "hot-budget"), s.BudgetServerMax, &e.large},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	for i, sv := range servers {
		if sv.need {
			wg.Add(1)
			go func() { defer wg.Done(); *sv.dst, errs[i] = startServer(sv.max) }()
		}
	}
	wg.Wait()
	defer func() {
		for _, sv := range servers {
			if *sv.dst != nil {
				(*sv.dst).close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	e.faults[faultproxy.Blackhole], e.faults[faultproxy.Reset] = blackhole, reset
	fmt.Fprintf(w, "runpool simulator: %d pools; PostgreSQL started in %v\n", len(s.Pools), time.Since(start).Round(100*time.Millisecond))

	var tables []*table
	add := func(ts ...*table) {
		for _, t := range ts {
			fmt.Fprintf(w, "  %s done (%v)\n", t.name, time.Since(start).Round(time.Second))
			tables = append(tables, t)
		}
	}
	// The two freeze scenarios one after the other: their pools run at
	// once, and more would crowd the bursts.
	if want("blackhole") {
		add(e.freeze(faultproxy.Blackhole))
	}
	if want("reset") {
		add(e.freeze(faultproxy.Reset))
	}
	if want("scale") {
		add(e.scaleOut("scale", e.small, 0))
	}
	if want("budget") {
		add(e.scaleOut("budget", e.large, s.Budget))
	}
	if want("hot") {
		add(e.hot("hot", e.small, 0))
	}
	if want("hot-budget") {
		add(e.hot("hot-budget", e.large, s.Budget))
	}
	if want("sigterm") {
		add(e.sigterm())
	}
	if ctx.Err() != nil {
		return tables, nil, ctx.Err()
	}

	if wait := time.Until(latestExit(tables).Add(s.Reclaim)); wait > 0 {
		fmt.Fprintf(w, "  waiting %v for the server to end the backends left behind (leaked: still there %v after exit)\n", wait.Round(time.Second), s.Reclaim)
	}
	e.reclaimCheck(tables)
	for _, t := range tables {
		printTable(w, t, s)
	}

	if s.SVG != "" {
		if err := writeChart(s.SVG, tables, s); err != nil {
			return tables, nil, err
		}
		fmt.Fprintf(w, "\nchart: %s\n", s.SVG)
	}
	fails := verdicts(tables)
	fmt.Fprintf(w, "\nrunpool's bar: every request served, more than half of the bursts after a freeze in bar,\npeak backends within the budget, nothing leaked: ")
	if len(fails) == 0 {
		fmt.Fprint(w, "met in every row")
		switch n := len(slices.DeleteFunc(slices.Clone(s.Pools), func(k poolKind) bool { return !k.slots })); {
		case n == 1:
			fmt.Fprint(w, ", the budget slots row's included")
		case n > 1:
			fmt.Fprint(w, ", the budget slots rows' included")
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "MISSED")
		for _, f := range fails {
			fmt.Fprintln(w, "  "+f)
		}
	}
	fmt.Fprintf(w, "\ntotal %v\n", time.Since(start).Round(time.Second))
	return tables, fails, nil
}

// poolsIn are the selected rows that run in the named scenario.
func (s settings) poolsIn(scenario string) []poolKind {
	return slices.DeleteFunc(slices.Clone(s.Pools), func(k poolKind) bool { return !k.runsIn(scenario) })
}

func latestExit(tables []*table) time.Time {
	var t time.Time
	for _, tb := range tables {
		for _, r := range tb.rows {
			if r.left > 0 && r.exited.After(t) {
				t = r.exited
			}
		}
	}
	return t
}
