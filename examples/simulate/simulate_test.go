package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"strings"
	"testing"
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
