package runpool

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
)

// settings is a pool's configuration, resolved once as the pool is
// created (resolve) and not changed afterwards.
type settings struct {
	// Config is the user's Config with every default applied and
	// MaxConns settled: what Pool.Config returns.
	Config
	// fairShare is this instance's share of the budget when the server
	// enforces the budget, so that the pool may borrow beyond it up to
	// MaxConns (budget.go); else 0.
	fairShare int32
}

// An event is a line for the pool's log. Resolving the settings does no
// I/O: it returns its lines, and the constructor writes them.
type event struct {
	level slog.Level
	msg   string
	args  []any
}

// logEvents writes events to l, slog.Default() when l is nil.
func logEvents(l *slog.Logger, events []event) {
	if l == nil {
		l = slog.Default()
	}
	for _, e := range events {
		l.Log(context.Background(), e.level, e.msg, e.args...)
	}
}

// resolve settles a pool's settings from a Config that passed Validate,
// the platform the process runs on and, when read, the server's limits
// (nil when not): it divides the budget (Config.Budget, else the
// server's allowance when read) among the instances and caps a derived
// maximum at the requests one instance serves at once, and returns the lines to log: where the maximum came
// from, and the start-up check's warnings. It fails when the budget
// cannot be divided, when the start-up check is to fail (BudgetCheck
// error), or when MinConns exceeds the settled maximum. The lines are
// returned with an error too: they say what was found before it.
func resolve(cfg Config, platform Platform, server *ServerLimits) (settings, []event, error) {
	instancesKnown, explicitMax := cfg.MaxInstances > 0, cfg.MaxConns > 0
	s := settings{Config: cfg.withDefaults()}
	var events []event
	if s.Concurrency == 0 {
		s.Concurrency = platform.Concurrency
	}
	var err error
	if events, err = planLimits(&s, server, platform, instancesKnown); err != nil {
		return settings{}, events, err
	}
	derived := !explicitMax && s.MaxConns != 0 // planLimits said where it came from
	if s.MaxConns == 0 {
		s.MaxConns = int32(defaultMaxConns())
	}
	if !explicitMax {
		s.capAtConcurrency()
	}
	if !derived {
		source := "default"
		if explicitMax {
			source = "MaxConns"
		}
		events = append(events, s.info("runpool: budget derived", "budget", 0, "source", source,
			"max_conns", s.MaxConns, "concurrency", s.Concurrency, "platform", platform.Name))
	}
	if s.MaxConns == 0 {
		s.MaxConns = int32(defaultMaxConns())
	}
	if s.DrainTimeout == 0 {
		s.DrainTimeout = platform.DrainTimeout()
	}
	if s.MinConns > s.MaxConns {
		return settings{}, events, fieldError("MinConns", s.MinConns, fmt.Sprintf("must not exceed MaxConns (%d)", s.MaxConns))
	}
	return s, events, nil
}

// capAtConcurrency caps a derived MaxConns at the requests one instance
// serves at once: more connections than that would only idle.
func (s *settings) capAtConcurrency() {
	if c := int32(s.Concurrency); c > 0 && c < s.MaxConns {
		s.MaxConns = c
	}
}

// info and warn make the pool's log lines, labelled with its name.
func (s *settings) info(msg string, args ...any) event { return s.event(slog.LevelInfo, msg, args) }
func (s *settings) warn(msg string, args ...any) event { return s.event(slog.LevelWarn, msg, args) }

func (s *settings) event(level slog.Level, msg string, args []any) event {
	return event{level: level, msg: msg, args: append([]any{"pool", s.Name}, args...)}
}

// defaultMaxConns is pgxpool's default size, for pools with no budget.
func defaultMaxConns() int { return max(4, runtime.GOMAXPROCS(0)) }
