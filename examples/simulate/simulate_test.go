package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
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
		"-leak-wait", "1s", "-reclaim", "8s",
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
// budget or leaked, whatever the load, and judges p99 only against the
// yardstick measured in the same conditions: a loaded machine's slower
// burst passes when its fresh dials were slower too.
func TestVerdict(t *testing.T) {
	ms := time.Millisecond
	good := figures{n: 64, ok: 64, p99: 90 * ms, latencyBar: true, fresh: 35 * ms, peak: 16, leaked: 0}
	tests := []struct {
		name string
		edit func(*figures)
		miss []string // substrings of the misses, in order; none: passes
	}{
		{"all served, p99 within 3x the fresh dial", func(*figures) {}, nil},
		{"loaded machine: p99 and yardstick both 4x", func(f *figures) { f.p99, f.fresh = 360*ms, 140*ms }, nil},
		{"p99 exactly at the bar", func(f *figures) { f.p99 = 105 * ms }, nil},
		{"p99 over 3x the yardstick of its own turns", func(f *figures) { f.p99 = 106 * ms }, []string{"p99 106 ms over 3x"}},
		{"loaded yardstick does not excuse a slower p99", func(f *figures) { f.p99, f.fresh = 500*ms, 140*ms }, []string{"p99 500 ms over"}},
		{"no latency bar outside the freeze scenarios", func(f *figures) { f.latencyBar, f.fresh, f.p99 = false, 0, 3*time.Second }, nil},
		{"latency bar without a yardstick", func(f *figures) { f.fresh = 0 }, []string{"no fresh dial measured"}},
		{"one request failed on a loaded machine", func(f *figures) {
			f.ok, f.failures, f.fresh, f.p99 = 63, "deadline exceeded (1)", 700*ms, 2*time.Second
		},
			[]string{"1 of 64 requests failed: deadline exceeded (1)"}},
		{"no requests", func(f *figures) { f.n, f.ok = 0, 0 }, []string{"no requests ran"}},
		{"peak at the budget", func(f *figures) { f.budget = 16 }, nil},
		{"peak over the budget", func(f *figures) { f.budget = 15 }, []string{"peak 16 backends over the budget of 15"}},
		{"a leaked backend", func(f *figures) { f.leaked = 1 }, []string{"1 backends leaked"}},
		{"did not run", func(f *figures) { f.err = errors.New("fresh dial: refused") }, []string{"did not run: fresh dial: refused"}},
		{"every miss at once", func(f *figures) { f.ok, f.p99, f.budget, f.leaked = 60, time.Second, 10, 2 },
			[]string{"4 of 64 requests failed", "p99 1.00 s over", "peak 16 backends over the budget of 10", "2 backends leaked"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := good
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
