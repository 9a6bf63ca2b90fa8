package runpool_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"go.opentelemetry.io/otel/attribute"
)

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu   sync.Mutex
	recs []logRec
}

type logRec struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value.Resolve(); return true })
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
	return nil
}

// find returns the records whose message begins with prefix.
func (h *logRecorder) find(prefix string) []logRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRec
	for _, r := range h.recs {
		if strings.HasPrefix(r.msg, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// atLeast returns the records at level or above.
func (h *logRecorder) atLeast(level slog.Level) []logRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRec
	for _, r := range h.recs {
		if r.level >= level {
			out = append(out, r)
		}
	}
	return out
}

// The start-up line says where the maximum came from, with or without a
// budget.
func TestEventBudgetDerived(t *testing.T) {
	for _, c := range []struct {
		name   string
		cfg    runpool.Config
		source string
		max    int64
	}{
		{"explicit", runpool.Config{MaxConns: 3}, "MaxConns", 3},
		// 10 / ceil(2 instances * 1.1) = 3 each.
		{"budget", runpool.Config{Budget: 10, MaxInstances: 2}, "RUNPOOL_BUDGET", 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs := &logRecorder{}
			c.cfg.Logger = slog.New(logs)
			openPool(t, c.cfg)
			recs := logs.find("runpool: budget derived")
			if len(recs) != 1 || recs[0].level != slog.LevelInfo {
				t.Fatalf("start-up lines %+v, want one Info line", recs)
			}
			if got := recs[0].attrs["source"].String(); got != c.source {
				t.Errorf("source %q, want %q", got, c.source)
			}
			if got := recs[0].attrs["max_conns"].Int64(); got != c.max {
				t.Errorf("max_conns %d, want %d", got, c.max)
			}
		})
	}
}

// In the steady state the pool says nothing at Info: no line per
// checkout, release or query.
func TestEventsQuietInSteadyState(t *testing.T) {
	logs := &logRecorder{}
	p, _, _ := openPool(t, runpool.Config{MaxConns: 2, Logger: slog.New(logs), MaintainInterval: 20 * time.Millisecond})
	ctx := ctxT(t, 20*time.Second)
	before := len(logs.atLeast(slog.LevelInfo)) // the start-up line
	for range 200 {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.Release()
		if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // a few maintainer ticks
	if recs := logs.atLeast(slog.LevelInfo); len(recs) != before {
		t.Fatalf("steady state logged %+v at Info or above", recs[before:])
	}
}

// A full server (the role's connection limit) is back-pressure: one line
// when it begins, one when the last caller that met it is served, and
// the counters agree with what happened.
func TestEventsBackpressure(t *testing.T) {
	const pool = "full"
	srv := pgtest.Shared(t)
	user := srv.CreateRole(t, 2)
	rd := newReader(t)
	logs := &logRecorder{}
	p, _, _ := openPool(t, runpool.Config{Name: pool, MaxConns: 3, Logger: slog.New(logs), MeterProvider: rd.mp}, onServer(srv, user))
	ctx := ctxT(t, 30*time.Second)

	held := acquireAll(t, ctx, p.Acquire, 2)
	a, b := held[0], held[1]
	// The role holds its 2 connections: a third caller meets 53300.
	served := acquireInBackground(ctx, p.Acquire)
	waitFor(t, 10*time.Second, "no caller waiting out back-pressure", func() bool {
		return rd.collect().sum(t, "runpool.backpressure.waiting", pool) == 1
	})
	if recs := logs.find("runpool: back-pressure begun"); len(recs) != 1 || recs[0].level != slog.LevelInfo {
		t.Fatalf("back-pressure begun logged as %+v, want one Info line", recs)
	}
	a.Release() // serves the waiter
	if err := <-served; err != nil {
		t.Fatalf("the caller under back-pressure: %v", err)
	}
	b.Release()

	recs := logs.find("runpool: back-pressure ended")
	if len(recs) != 1 || recs[0].attrs["served"].Int64() != 1 || recs[0].attrs["failed"].Int64() != 0 || recs[0].attrs["backoffs"].Int64() < 1 {
		t.Fatalf("back-pressure ended logged as %+v, want one line: 1 served, 0 failed, at least 1 backoff", recs)
	}
	s := rd.collect()
	refused := s.sum(t, "runpool.dials", pool, attribute.String("runpool.dial.result", "too_many_connections"))
	backoffs := s.sum(t, "runpool.backoffs", pool)
	if refused < 1 || backoffs != refused || backoffs != p.Stat().BackoffCount() || backoffs != recs[0].attrs["backoffs"].Int64() {
		t.Errorf("dials refused with 53300: %d, backoffs %d (Stat %d, log %v); want equal and at least 1",
			refused, backoffs, p.Stat().BackoffCount(), recs[0].attrs["backoffs"])
	}
	if got := p.Stat().DialFailureCount(); got != refused {
		t.Errorf("Stat.DialFailureCount %d, want %d", got, refused)
	}
	if got := s.sum(t, "runpool.backpressure.waiting", pool); got != 0 {
		t.Errorf("runpool.backpressure.waiting %d after the episode, want 0", got)
	}
}
