package runpool

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A line resolve asks to log, as the table below states it: the level,
// the start of the message and, for the start-up line, its attributes.
type wantEvent struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

// resolve settles the size, the fair share, the concurrency and the
// drain timeout from the Config, the platform and the server's limits,
// and returns the lines to log; no server, no logger.
func TestResolve(t *testing.T) {
	none := Platform{Name: "none"}
	cloudRun := platforms["cloudrun"]
	lambda := platforms["lambda"]
	// The server allows 12 connections: it enforces the budget.
	server12 := &ServerLimits{MaxConnections: 15, SuperuserReserved: 3, RoleLimit: -1, DatabaseLimit: -1}
	def := int32(defaultMaxConns())
	info, warn := slog.LevelInfo, slog.LevelWarn
	derived := func(attrs map[string]any) wantEvent {
		return wantEvent{info, "runpool: budget derived", attrs}
	}

	for _, c := range []struct {
		name     string
		cfg      Config
		platform Platform
		server   *ServerLimits

		maxConns    int32
		fairShare   int32
		concurrency int
		drain       time.Duration
		events      []wantEvent
		err         string // a substring of the error, "" for none
	}{
		{name: "zero config: pgxpool's default", platform: none,
			maxConns: def, drain: 8 * time.Second,
			events: []wantEvent{derived(map[string]any{"source": "default", "max_conns": def, "budget": 0})}},
		{name: "explicit maximum", cfg: Config{MaxConns: 3}, platform: none,
			maxConns: 3, drain: 8 * time.Second,
			events: []wantEvent{derived(map[string]any{"source": "MaxConns", "max_conns": int32(3)})}},
		// 10 / ceil(2 * 1.1) = 3 each; nothing enforces the budget but the
		// division, so no borrowing.
		{name: "budget divided", cfg: Config{Budget: 10, MaxInstances: 2}, platform: none,
			maxConns: 3, drain: 8 * time.Second,
			events: []wantEvent{derived(map[string]any{"source": "RUNPOOL_BUDGET", "max_conns": int32(3), "fair_share": int32(3), "divided_by": 3, "borrowing": false})}},
		// The server's 12 among ceil(3 * 1.1) = 4 instances: 3 each, and
		// up to half the budget borrowing, since the server enforces it.
		{name: "server's allowance divided, borrowing", cfg: Config{MaxInstances: 3}, platform: none, server: server12,
			maxConns: 6, fairShare: 3, drain: 8 * time.Second,
			events: []wantEvent{derived(map[string]any{"source": "server", "budget": 12, "max_conns": int32(6), "fair_share": int32(3), "borrowing": true})}},
		{name: "reserve kept out of the server's allowance", cfg: Config{MaxInstances: 1, Reserve: 2}, platform: none, server: server12,
			maxConns: 5, fairShare: 5, drain: 8 * time.Second,
			events: []wantEvent{derived(map[string]any{"source": "server", "max_conns": int32(5), "fair_share": int32(5), "reserve": 2})}},
		// A budget below what the server allows is not enforced by it.
		{name: "budget below the server's allowance: no borrowing", cfg: Config{Budget: 8, MaxInstances: 1}, platform: none, server: server12,
			maxConns: 4, drain: 8 * time.Second,
			events: []wantEvent{derived(map[string]any{"source": "RUNPOOL_BUDGET", "max_conns": int32(4), "borrowing": false})}},
		{name: "no instance count: pgxpool's default within the server's allowance", platform: none, server: server12,
			maxConns: min(def, 12), drain: 8 * time.Second,
			events: []wantEvent{{warn, "runpool: RUNPOOL_MAX_INSTANCES is not set", map[string]any{"server_allows": 12, "max_conns": min(def, 12)}}}},
		{name: "budget beyond the server's allowance: warned", cfg: Config{Budget: 20, MaxInstances: 1}, platform: none, server: server12,
			maxConns: 10, fairShare: 10, drain: 8 * time.Second,
			events: []wantEvent{
				{warn, ErrBudgetExceedsServer.Error() + ": RUNPOOL_BUDGET=20, but this role may hold 12 connections", nil},
				derived(map[string]any{"source": "RUNPOOL_BUDGET", "max_conns": int32(10), "borrowing": true}),
			}},
		{name: "budget beyond the server's allowance: refused", cfg: Config{Budget: 20, MaxInstances: 1, BudgetCheck: BudgetCheckError}, platform: none, server: server12,
			err: "RUNPOOL_BUDGET=20, but this role may hold 12 connections"},
		{name: "budget too small for the instances", cfg: Config{Budget: 5, MaxInstances: 10}, platform: none,
			err: "cannot give each instance a connection"},
		{name: "share too small: pooler advice", cfg: Config{Budget: 100, Reserve: 3, MaxInstances: 50}, platform: none,
			maxConns: 1, drain: 8 * time.Second,
			events: []wantEvent{
				{warn, "runpool: each instance gets 1 connection(s)", nil},
				derived(map[string]any{"max_conns": int32(1)}),
			}},
		{name: "share too small behind a pooler: no advice", cfg: Config{Budget: 100, Reserve: 3, MaxInstances: 50, Pooler: PoolerPgBouncer}, platform: none,
			maxConns: 1, drain: 8 * time.Second,
			events: []wantEvent{derived(map[string]any{"max_conns": int32(1)})}},
		{name: "behind a pooler with no budget", cfg: Config{Pooler: PoolerPgBouncer}, platform: none,
			maxConns: def, drain: 8 * time.Second,
			events: []wantEvent{
				{info, "runpool: behind a pooler with no RUNPOOL_BUDGET", nil},
				derived(map[string]any{"source": "default"}),
			}},
		// The platform's concurrency caps a derived maximum, not an
		// explicit one, and sets the drain timeout.
		{name: "Lambda: one connection", platform: lambda,
			maxConns: 1, concurrency: 1, drain: 400 * time.Millisecond,
			events: []wantEvent{derived(map[string]any{"source": "default", "max_conns": int32(1), "concurrency": 1, "platform": "lambda"})}},
		{name: "Cloud Run: a budget's share capped at the concurrency", cfg: Config{Budget: 1000, MaxInstances: 1}, platform: cloudRun,
			maxConns: 80, concurrency: 80, drain: 8 * time.Second,
			events: []wantEvent{derived(map[string]any{"source": "RUNPOOL_BUDGET", "max_conns": int32(80), "platform": "cloudrun"})}},
		{name: "explicit maximum above the concurrency", cfg: Config{MaxConns: 100, Concurrency: 10}, platform: cloudRun,
			maxConns: 100, concurrency: 10, drain: 8 * time.Second,
			events: []wantEvent{derived(map[string]any{"source": "MaxConns", "max_conns": int32(100), "concurrency": 10})}},
		{name: "explicit drain timeout", cfg: Config{DrainTimeout: time.Second}, platform: lambda,
			maxConns: 1, concurrency: 1, drain: time.Second,
			events: []wantEvent{derived(map[string]any{"source": "default"})}},
		{name: "MinConns above the settled maximum", cfg: Config{MinConns: 2}, platform: lambda,
			err: "Config.MinConns"},

		// New and Start without I/O: the budget divided, not checked.
		{name: "no server: the budget divided", cfg: Config{Budget: 10, MaxInstances: 2}, platform: none,
			maxConns: 3, drain: 8 * time.Second,
			events: []wantEvent{derived(map[string]any{"source": "RUNPOOL_BUDGET", "max_conns": int32(3), "divided_by": 3, "borrowing": false})}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.cfg.Validate(); err != nil {
				t.Fatalf("the case's Config: %v", err)
			}
			s, events, err := resolve(c.cfg, c.platform, c.server)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one saying %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.MaxConns != c.maxConns || s.fairShare != c.fairShare || s.Concurrency != c.concurrency || s.DrainTimeout != c.drain {
				t.Errorf("MaxConns %d, fair share %d, Concurrency %d, DrainTimeout %v; want %d, %d, %d, %v",
					s.MaxConns, s.fairShare, s.Concurrency, s.DrainTimeout, c.maxConns, c.fairShare, c.concurrency, c.drain)
			}
			checkEvents(t, events, c.events)
		})
	}
}

func checkEvents(t *testing.T, got []event, want []wantEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d lines to log, want %d:\n%s", len(got), len(want), showEvents(got))
	}
	for i, w := range want {
		g := got[i]
		if g.level != w.level || !strings.HasPrefix(g.msg, w.msg) {
			t.Errorf("line %d: %v %q, want %v %q...", i, g.level, g.msg, w.level, w.msg)
		}
		attrs := map[string]any{}
		for j := 0; j+1 < len(g.args); j += 2 {
			attrs[g.args[j].(string)] = g.args[j+1]
		}
		if attrs["pool"] != defaultName {
			t.Errorf("line %d: pool %v, want %q", i, attrs["pool"], defaultName)
		}
		for k, v := range w.attrs {
			if attrs[k] != v {
				t.Errorf("line %d (%s): %s=%#v, want %#v", i, g.msg, k, attrs[k], v)
			}
		}
	}
}

func showEvents(events []event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\t%v %s %v\n", e.level, e.msg, e.args)
	}
	return b.String()
}

// The lines are returned with an error too, and the refusal of a budget
// beyond the server's allowance wraps ErrBudgetExceedsServer.
func TestResolveBudgetCheckError(t *testing.T) {
	server := &ServerLimits{MaxConnections: 10, RoleLimit: -1, DatabaseLimit: -1}
	_, _, err := resolve(Config{Budget: 20, MaxInstances: 1, BudgetCheck: BudgetCheckError}, Platform{Name: "none"}, server)
	if !errors.Is(err, ErrBudgetExceedsServer) {
		t.Fatalf("got %v, want ErrBudgetExceedsServer", err)
	}
	// Warned, then the division fails: the warning is still returned.
	_, events, err := resolve(Config{Budget: 20, Reserve: 19, MaxInstances: 2}, Platform{Name: "none"}, server)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Setting != "RUNPOOL_BUDGET" {
		t.Fatalf("got %v, want a *ConfigError naming RUNPOOL_BUDGET", err)
	}
	checkEvents(t, events, []wantEvent{{slog.LevelWarn, ErrBudgetExceedsServer.Error(), nil}})
}

// The defaults are applied once, in resolve, and what the user set is
// kept.
func TestResolveAppliesDefaults(t *testing.T) {
	s, _, err := resolve(Config{Name: "api", DialTimeout: time.Second}, Platform{Name: "none"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Name: "api", DialTimeout: time.Second}.withDefaults()
	want.MaxConns, want.DrainTimeout = int32(defaultMaxConns()), 8*time.Second
	if s.Config != want {
		t.Errorf("resolved\n%+v\nwant\n%+v", s.Config, want)
	}
}
