package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(instanceEnv); spec != "" {
		os.Exit(runInstance(spec)) // an instance: this test binary re-executed
	}
	os.Exit(m.Run())
}

// A short run of the freeze scenarios and a small scale-out: runpool's
// rows serve every request and leak no backend, and every table has the
// rows asked for.
func TestShortRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL servers and instance processes")
	}
	// Server-side reclaim within seconds rather than runpool's default
	// 57 s, so that a leak shows within the test: the instances inherit
	// these variables. The pool's own idle limit must stay below it.
	t.Setenv("RUNPOOL_MAX_CONN_IDLE_TIME", "2s")
	t.Setenv("RUNPOOL_SERVER_IDLE_SESSION_TIMEOUT", "4s")
	s, err := parseFlags(flag.NewFlagSet("simulate", flag.ContinueOnError), []string{
		"-only", "freeze,scale", "-pools", "pgxpool,runpool-pgx,runpool-sql",
		"-freeze", "1500ms", "-nat-idle", "1s", "-bursts", "2", "-burst", "8",
		"-instances", "3", "-rounds", "2", "-load", "6", "-server-max", "12",
		"-leak-wait", "1s", "-reclaim", "8s", "-net-latency", "2ms",
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tables, _, err := run(context.Background(), s, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}

	var names []string
	for _, tb := range tables {
		names = append(names, tb.name)
		if len(tb.rows) != len(s.Pools) {
			t.Errorf("%s: %d rows, want %d", tb.name, len(tb.rows), len(s.Pools))
		}
		for _, r := range tb.rows {
			if r.err != nil {
				t.Errorf("%s, %s: did not run: %v", tb.name, r.pool.label, r.err)
				continue
			}
			if !r.pool.runpool {
				continue
			}
			if sm := summarize(r.reqs); sm.n == 0 || sm.ok < sm.n {
				t.Errorf("%s, %s: %d of %d requests served: %s", tb.name, r.pool.label, sm.ok, sm.n, errorCounts(r.reqs))
			}
			if r.leaked > 0 {
				t.Errorf("%s, %s: %d backends leaked", tb.name, r.pool.label, r.leaked)
			}
		}
	}
	if got, want := strings.Join(names, ","), "blackhole,reset,scale"; got != want {
		t.Errorf("tables %s, want %s", got, want)
	}
	// The printed tables: a title and a row per pool each.
	text := out.String()
	titles := []string{"Freeze behind a NAT black hole", "Freeze behind a NAT reset", "Scale-out over a small server", "runpool's bar"}
	for i, title := range titles[:3] {
		from, to := strings.Index(text, title), strings.Index(text, titles[i+1])
		if from < 0 || to < from {
			t.Errorf("no table %q", title)
			continue
		}
		for _, label := range []string{"pgxpool defaults", "runpool (pgxadapter)", "runpool (sqladapter)"} {
			if !strings.Contains(text[from:to], label) {
				t.Errorf("table %q has no row %q", title, label)
			}
		}
	}
}

// The verdict fails a runpool row that lost a request, went over its
// budget or leaked, whatever the load; judges each burst's p99 only
// against the yardstick measured in that burst's own turn, so a loaded
// machine's slower bursts pass when their cold bursts were slower too;
// forgives one stalled burst of four but not a pool that waits on stale
// connections after every freeze.
func TestVerdict(t *testing.T) {
	ms := time.Millisecond
	bursts := func(p99, cold time.Duration) []freezeBurst {
		return []freezeBurst{{p99, cold}, {p99, cold}, {p99, cold}, {p99, cold}}
	}
	good := figures{n: 64, ok: 64, latencyBar: true, bursts: bursts(90*ms, 50*ms), peak: 16, leaked: 0}
	tests := []struct {
		name string
		edit func(*figures)
		miss []string // substrings of the misses, in order; none: passes
	}{
		{"all served, every burst within 2x its cold burst", func(*figures) {}, nil},
		{"loaded machine: bursts and yardsticks all 4x", func(f *figures) { f.bursts = bursts(360*ms, 200*ms) }, nil},
		{"every burst exactly at its bar", func(f *figures) { f.bursts = bursts(100*ms, 50*ms) }, nil},
		{"one burst of four stalled past its turn's bar", func(f *figures) { f.bursts[2] = freezeBurst{515 * ms, 103 * ms} }, nil},
		{"two bursts of four over their turns' bars", func(f *figures) {
			f.bursts[0], f.bursts[2] = freezeBurst{515 * ms, 103 * ms}, freezeBurst{101 * ms, 50 * ms}
		},
			[]string{"in 2 of 4 bursts, not more than half (burst 1: 515 ms over 206 ms, burst 3: 101 ms over 100 ms)"}},
		{"every burst just over its bar", func(f *figures) { f.bursts = bursts(101*ms, 50*ms) }, []string{"in 0 of 4 bursts"}},
		{"a burst is judged by its own turn's yardstick, not the row's slowest", func(f *figures) {
			f.bursts = bursts(200*ms, 50*ms)
			f.bursts[0] = freezeBurst{200 * ms, 140 * ms}
		},
			[]string{"in 1 of 4 bursts"}},
		{"waits on a stale connection after every freeze until just before the deadline", func(f *figures) {
			f.bursts = bursts(1950*ms, 50*ms)
		},
			[]string{"in 0 of 4 bursts, not more than half (burst 1: 1.95 s over 100 ms"}},
		{"waits on a stale connection until the deadline", func(f *figures) {
			f.ok, f.failures, f.bursts = 60, "deadline exceeded (4)", bursts(2*time.Second, 50*ms)
		},
			[]string{"4 of 64 requests failed: deadline exceeded (4)", "in 0 of 4 bursts"}},
		{"a loaded yardstick does not excuse waiting on a stale connection", func(f *figures) {
			f.bursts = bursts(1950*ms, 140*ms)
			f.bursts[3] = freezeBurst{250 * ms, 140 * ms}
		},
			[]string{"in 1 of 4 bursts"}},
		{"two bursts: both within", func(f *figures) { f.bursts = f.bursts[:2] }, nil},
		{"two bursts: one over is half, not more", func(f *figures) { f.bursts = []freezeBurst{{90 * ms, 50 * ms}, {515 * ms, 103 * ms}} },
			[]string{"in 1 of 2 bursts"}},
		{"no latency bar outside the freeze scenarios", func(f *figures) { f.latencyBar, f.bursts = false, nil }, nil},
		{"latency bar without a burst", func(f *figures) { f.bursts = nil }, []string{"no burst after a freeze measured"}},
		{"bursts without a yardstick are not in the bar", func(f *figures) { f.bursts[1].cold, f.bursts[3].cold = 0, 0 },
			[]string{"in 2 of 4 bursts, not more than half (burst 2: no cold burst measured, burst 4: no cold burst measured)"}},
		{"one request failed on a loaded machine", func(f *figures) {
			f.ok, f.failures, f.bursts = 63, "deadline exceeded (1)", bursts(700*ms, 700*ms)
		},
			[]string{"1 of 64 requests failed: deadline exceeded (1)"}},
		{"no requests", func(f *figures) { f.n, f.ok = 0, 0 }, []string{"no requests ran"}},
		{"peak at the budget", func(f *figures) { f.budget = 16 }, nil},
		{"peak over the budget", func(f *figures) { f.budget = 15 }, []string{"peak 16 backends over the budget of 15"}},
		{"a leaked backend", func(f *figures) { f.leaked = 1 }, []string{"1 backends leaked"}},
		{"did not run", func(f *figures) { f.err = errors.New("cold burst: refused") }, []string{"did not run: cold burst: refused"}},
		{"every miss at once", func(f *figures) { f.ok, f.bursts, f.budget, f.leaked = 60, bursts(time.Second, 50*ms), 10, 2 },
			[]string{"4 of 64 requests failed", "burst 1: 1.00 s over", "peak 16 backends over the budget of 10", "2 backends leaked"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := good
			f.bursts = slices.Clone(good.bursts)
			tc.edit(&f)
			got := verdict(f)
			if len(got) != len(tc.miss) {
				t.Fatalf("verdict(%+v) = %q, want %d misses %q", f, got, len(tc.miss), tc.miss)
			}
			for i, m := range tc.miss {
				if !strings.Contains(got[i], m) {
					t.Errorf("miss %d = %q, want it to contain %q", i, got[i], m)
				}
			}
		})
	}
}

// Without flags the run has the six default rows and scenarios, without
// the slots row and hot-budget; -only slots selects the budget scenarios
// with static division, runpool (pgxadapter) and the slots row, unless
// -pools says otherwise; the slots row runs only in the budget scenarios.
func TestParseFlagsSlots(t *testing.T) {
	names := func(ks []poolKind) string { return poolNamesOf(ks) }
	tests := []struct {
		args             []string
		scenarios, pools string // "": parseFlags fails
	}{
		{nil, "blackhole,reset,scale,budget,hot,sigterm", "pgxpool,pgxpool-tuned,sql,sql-tuned,runpool-pgx,runpool-sql"},
		{[]string{"-only", "slots"}, "scale,budget,hot,hot-budget", "pgxpool-tuned,runpool-pgx,runpool-slots"},
		{[]string{"-only", "slots", "-pools", "runpool-slots"}, "scale,budget,hot,hot-budget", "runpool-slots"},
		{[]string{"-only", "hot-budget,budget"}, "budget,hot-budget", "pgxpool,pgxpool-tuned,sql,sql-tuned,runpool-pgx,runpool-sql"},
		{[]string{"-only", "freeze,scale", "-pools", "runpool-slots,runpool-pgx"}, "blackhole,reset,scale", "runpool-slots,runpool-pgx"},
		{[]string{"-only", "freeze", "-pools", "runpool-slots"}, "", ""},
		{[]string{"-only", "slotz"}, "", ""},
		{[]string{"-only", "slots", "-net-latency", "-1ms"}, "", ""},
		{[]string{"-only", "hot", "-hot", "3"}, "hot", "pgxpool,pgxpool-tuned,sql,sql-tuned,runpool-pgx,runpool-sql"},
		{[]string{"-only", "hot", "-hot", "11"}, "", ""},
		{[]string{"-only", "hot", "-hot", "0"}, "", ""},
	}
	for _, tc := range tests {
		s, err := parseFlags(flag.NewFlagSet("simulate", flag.ContinueOnError), tc.args)
		if tc.scenarios == "" {
			if err == nil {
				t.Errorf("%q: no error", tc.args)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if got := strings.Join(s.Scenarios, ","); got != tc.scenarios {
			t.Errorf("%q: scenarios %s, want %s", tc.args, got, tc.scenarios)
		}
		if got := names(s.Pools); got != tc.pools {
			t.Errorf("%q: pools %s, want %s", tc.args, got, tc.pools)
		}
		for _, n := range s.Scenarios {
			in := names(s.poolsIn(n))
			if want := slices.Contains(budgetScenarios, n); strings.Contains(in, "runpool-slots") != (want && strings.Contains(tc.pools, "runpool-slots")) {
				t.Errorf("%q: %s runs %s", tc.args, n, in)
			}
		}
	}
}

// Each slots row is compared with static division under a budget
// scenario's table only, and only when both rows ran.
func TestSlotsRatio(t *testing.T) {
	k := func(name string) poolKind { p, _ := poolByName(name); return p }
	reqs := func(lat ...time.Duration) []request {
		var rs []request
		for _, l := range lat {
			rs = append(rs, request{Lat: l})
		}
		return rs
	}
	ms := time.Millisecond
	slots := &row{pool: k("runpool-slots"), reqs: reqs(100*ms, 300*ms)}
	static := &row{pool: k(staticDivision), reqs: reqs(200*ms, 600*ms)}
	t1 := &table{budget: 25, rows: []*row{static, {pool: k("runpool-pgx"), reqs: reqs(ms)}, slots}}
	if got, want := slotsRatio(t1), "runpool (pgxadapter, budget slots) / static division (pgxpool tuned by hand): p99 0.50x, p50 0.50x"; got != want {
		t.Errorf("slotsRatio = %q, want %q", got, want)
	}
	sqlSlots := &row{pool: k("runpool-sql-slots"), reqs: reqs(400*ms, 1200*ms)}
	t2 := &table{budget: 25, rows: []*row{static, slots, sqlSlots}}
	if got, want := slotsRatio(t2), "runpool (pgxadapter, budget slots) / static division (pgxpool tuned by hand): p99 0.50x, p50 0.50x\n"+
		"runpool (sqladapter, budget slots) / static division (pgxpool tuned by hand): p99 2.00x, p50 2.00x"; got != want {
		t.Errorf("slotsRatio with two slots rows = %q, want %q", got, want)
	}
	for name, tb := range map[string]*table{
		"no budget":      {rows: t1.rows},
		"no slots row":   {budget: 25, rows: t1.rows[:2]},
		"no static row":  {budget: 25, rows: t1.rows[1:]},
		"static not run": {budget: 25, rows: []*row{{pool: k(staticDivision), err: errors.New("x")}, slots}},
	} {
		if got := slotsRatio(tb); got != "" {
			t.Errorf("%s: slotsRatio = %q, want none", name, got)
		}
	}
}
