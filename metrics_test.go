package runpool_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/faultproxy"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// reader collects a MeterProvider's metrics on demand.
type reader struct {
	t  *testing.T
	r  *sdkmetric.ManualReader
	mp *sdkmetric.MeterProvider
}

func newReader(t *testing.T) *reader {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return &reader{t: t, r: r, mp: mp}
}

// snapshot is one collection, by instrument name.
type snapshot map[string]metricdata.Metrics

func (r *reader) collect() snapshot {
	r.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.r.Collect(context.Background(), &rm); err != nil {
		r.t.Fatal(err)
	}
	s := snapshot{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			s[m.Name] = m
		}
	}
	return s
}

// matches reports whether set holds exactly the pool's name and kv.
func matches(set attribute.Set, pool string, kv []attribute.KeyValue) bool {
	if set.Len() != len(kv)+1 {
		return false
	}
	if v, ok := set.Value("db.client.connection.pool.name"); !ok || v.AsString() != pool {
		return false
	}
	for _, a := range kv {
		if v, ok := set.Value(a.Key); !ok || v != a.Value {
			return false
		}
	}
	return true
}

// sum is the value of an int64 counter or up-down counter for the
// attributes, 0 when it has no such point.
func (s snapshot) sum(t *testing.T, name, pool string, kv ...attribute.KeyValue) int64 {
	t.Helper()
	m, ok := s[name]
	if !ok {
		return 0
	}
	d, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is a %T, want an int64 sum", name, m.Data)
	}
	for _, p := range d.DataPoints {
		if matches(p.Attributes, pool, kv) {
			return p.Value
		}
	}
	return 0
}

// hist is the histogram point for the attributes (zero when absent).
func (s snapshot) hist(t *testing.T, name, pool string, kv ...attribute.KeyValue) metricdata.HistogramDataPoint[float64] {
	t.Helper()
	m, ok := s[name]
	if !ok {
		return metricdata.HistogramDataPoint[float64]{}
	}
	d, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is a %T, want a float64 histogram", name, m.Data)
	}
	for _, p := range d.DataPoints {
		if matches(p.Attributes, pool, kv) {
			return p
		}
	}
	return metricdata.HistogramDataPoint[float64]{}
}

func extrema(p metricdata.HistogramDataPoint[float64]) (lo, hi float64) {
	lo, _ = p.Min.Value()
	hi, _ = p.Max.Value()
	return lo, hi
}

// freezeSelf stops this whole process for d with SIGSTOP, as a platform
// freezes an idle instance: a child process sends the SIGCONT.
func freezeSelf(t *testing.T, d time.Duration) {
	t.Helper()
	cont := exec.Command("sh", "-c", fmt.Sprintf("sleep %.3f; kill -CONT %d", d.Seconds(), os.Getpid()))
	if err := cont.Start(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := cont.Wait(); err != nil {
		t.Fatalf("the process that thaws this one: %v", err)
	}
}

// orphansEnded waits until the pool's one connection as user has ended
// the orphaned sessions the pool noted (the query pgxconn sends for it is
// the last that backend ran) and is back in the idle list.
func orphansEnded(t *testing.T, p *pgxadapter.Pool, srv *pgtest.Server, user string) {
	t.Helper()
	waitFor(t, 10*time.Second, "the orphaned sessions never ended", func() bool {
		return srv.QueryInt(t, `SELECT count(*) FROM pg_stat_activity
			WHERE usename = $1 AND state = 'idle' AND query LIKE '%pg_terminate_backend%'`, user) == 1 &&
			p.Stat().IdleConns() == 1
	})
}

// The instruments after a scripted sequence against a real server:
// acquire, release, a wait for a connection, an acquire timeout, stale
// connections discarded, two freezes (one short of PathIdleTimeout, one
// past it) and the drain. Each instrument holds exactly what happened.
//
// The pool connects through a proxy that adds scriptedLatency each way:
// on loopback a probe's deadline and its hedge are a few milliseconds,
// which a loaded machine's scheduling delays exceed (a hedge dials a
// connection the script does not count); on a path with a round trip of
// its own they are tens of milliseconds.
func TestMetricsScripted(t *testing.T) {
	const pool = "scripted"
	const scriptedLatency = 10 * time.Millisecond
	rd := newReader(t)
	logs := &logRecorder{}
	proxy := startProxy(t, faultproxy.Config{Latency: scriptedLatency})
	p, srv, user := openPool(t, runpool.Config{
		Name: pool, MeterProvider: rd.mp, Logger: slog.New(logs), MaxConns: 2,
		MaintainInterval: 100 * time.Millisecond, FreezeThreshold: time.Second, PathIdleTimeout: 3 * time.Second,
		// Only a sign of trouble makes a checkout probe, never the test's pace.
		ProbeAfterIdle: time.Minute, MaxConnIdleTime: time.Minute, DrainTimeout: 5 * time.Second,
		// The start-up check dials once (runpool.Open), as the script expects.
		BudgetCheck: runpool.BudgetCheckError,
	}, through(proxy))
	ctx := ctxT(t, 60*time.Second)
	acquire := func() *pgxadapter.Conn {
		t.Helper()
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	state := func(s snapshot, st string) int64 {
		return s.sum(t, "db.client.connection.count", pool, attribute.String("db.client.connection.state", st))
	}

	// Open dialled once; that connection waits outside the idle list
	// for the first checkout.
	s := rd.collect()
	if got := s.sum(t, "runpool.dials", pool, attribute.String("runpool.dial.result", "ok")); got != 1 {
		t.Fatalf("after Open: %d dials, want 1", got)
	}

	// Acquire two: the maximum.
	c1, c2 := acquire(), acquire()
	s = rd.collect()
	for _, c := range []struct {
		name string
		got  int64
		want int64
	}{
		{"count{used}", state(s, "used"), 2},
		{"count{idle}", state(s, "idle"), 0},
		{"max", s.sum(t, "db.client.connection.max", pool), 2},
		{"idle.max", s.sum(t, "db.client.connection.idle.max", pool), 2},
		{"idle.min", s.sum(t, "db.client.connection.idle.min", pool), 0},
		{"pending_requests", s.sum(t, "db.client.connection.pending_requests", pool), 0},
		{"runpool.budget.fair_share", s.sum(t, "runpool.budget.fair_share", pool), 2},
		{"runpool.draining", s.sum(t, "runpool.draining", pool), 0},
	} {
		if c.got != c.want {
			t.Errorf("with two borrowed: %s = %d, want %d", c.name, c.got, c.want)
		}
	}

	// A third caller waits until c1 comes back.
	got3 := make(chan *pgxadapter.Conn, 1)
	go func() {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got3 <- c
	}()
	waitFor(t, 10*time.Second, "the waiter never showed in pending_requests", func() bool {
		return rd.collect().sum(t, "db.client.connection.pending_requests", pool) == 1
	})
	waiting := time.Now()
	time.Sleep(50 * time.Millisecond)
	held := time.Since(waiting)
	c1.Release()
	c3 := <-got3
	if c3 == nil {
		t.FailNow()
	}

	// An acquire that times out while both are borrowed.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := p.Acquire(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire at the maximum: %v, want DeadlineExceeded", err)
	}
	c2.Release()
	c3.Release()
	s = rd.collect()
	if u, i := state(s, "used"), state(s, "idle"); u != 0 || i != 2 {
		t.Fatalf("after release: used %d idle %d, want 0 and 2", u, i)
	}
	if _, hi := extrema(s.hist(t, "db.client.connection.wait_time", pool)); hi < held.Seconds() {
		t.Errorf("wait_time max %.4fs, but the waiter waited at least %v", hi, held)
	}

	// The server ends both idle sessions. The first checkout sees one
	// closed without I/O; its sibling, now suspect, fails its probe; a
	// fresh connection serves the caller.
	if n := srv.TerminateBackends(t, user); n != 2 {
		t.Fatalf("terminated %d backends, want 2", n)
	}
	time.Sleep(10 * scriptedLatency) // the server's goodbyes cross the proxy
	acquire().Release()
	// The sessions of the discarded connections are noted as orphans;
	// the maintainer's worker ends them through the idle one at its next
	// tick. A freeze or a checkout during that query would find the
	// connection busy, so the script goes on once it has run.
	orphansEnded(t, p, srv, user)

	// Freeze the process 2 s (past FreezeThreshold, short of
	// PathIdleTimeout): the idle connection is probed, and passes. The
	// checkout waits for the connection to be idle: the tick that detects
	// the freeze sweeps the idle list next, holding it for a moment.
	freezeSelf(t, 2*time.Second)
	waitFor(t, 10*time.Second, "the first freeze went unnoticed, or the connection not idle after it", func() bool { return p.Stat().FreezeCount() == 1 && p.Stat().IdleConns() == 1 })
	acquire().Release()

	// Freeze 4 s, past PathIdleTimeout: the idle connection is discarded
	// unprobed and a fresh one dialled.
	freezeSelf(t, 4*time.Second)
	waitFor(t, 10*time.Second, "the second freeze went unnoticed, or the connection not idle after it", func() bool { return p.Stat().FreezeCount() == 2 && p.Stat().IdleConns() == 1 })
	acquire().Release()
	orphansEnded(t, p, srv, user) // the discarded one's, before the drain cuts the worker

	rep, err := p.Shutdown(ctx)
	if err != nil {
		t.Fatal(err)
	}

	s = rd.collect()
	dial := func(r string) int64 {
		return s.sum(t, "runpool.dials", pool, attribute.String("runpool.dial.result", r))
	}
	stale := func(r string) int64 {
		return s.sum(t, "runpool.connection.stale_discarded", pool, attribute.String("runpool.stale.reason", r))
	}
	probes := func(r string) uint64 {
		return s.hist(t, "runpool.probe.duration", pool, attribute.String("runpool.probe.result", r)).Count
	}
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		// Open's dial, c2, the replacement after the terminations, the
		// replacement after the long freeze.
		{"runpool.dials{ok}", dial("ok"), 4},
		{"runpool.dials{failed}", dial("failed"), 0},
		{"create_time count", int64(s.hist(t, "db.client.connection.create_time", pool).Count), 4},
		// c1, c2, c3 and the three after the terminations and freezes.
		{"wait_time count", int64(s.hist(t, "db.client.connection.wait_time", pool).Count), 6},
		{"use_time count", int64(s.hist(t, "db.client.connection.use_time", pool).Count), 6},
		{"timeouts", s.sum(t, "db.client.connection.timeouts", pool), 1},
		{"stale{closed_by_server}", stale("closed_by_server"), 1},
		{"stale{probe_failed}", stale("probe_failed"), 1},
		{"stale{cohort}", stale("cohort"), 0},
		{"stale{freeze}", stale("freeze"), 1},
		{"probes{failed}", int64(probes("failed")), 1},
		{"probes{ok}", int64(probes("ok")), 1},
		{"probes{cancelled}", int64(probes("cancelled")), 0},
		{"freezes", int64(s.hist(t, "runpool.freeze.duration", pool).Count), 2},
		{"backoffs", s.sum(t, "runpool.backoffs", pool), 0},
		{"drain{closed_idle}", s.sum(t, "runpool.drain.connections", pool, attribute.String("runpool.drain.outcome", "closed_idle")), 1},
		{"drain{returned}", s.sum(t, "runpool.drain.connections", pool, attribute.String("runpool.drain.outcome", "returned")), 0},
		{"drains{complete}", int64(s.hist(t, "runpool.drain.duration", pool, attribute.String("runpool.drain.result", "complete")).Count), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if lo, hi := extrema(s.hist(t, "runpool.freeze.duration", pool)); lo < 1.8 || lo >= 3 || hi < 3.8 || hi > 8 {
		t.Errorf("freezes lasted %.2fs and %.2fs, want about 2s and 4s", lo, hi)
	}
	if rep.ClosedIdle != 1 {
		t.Errorf("drain report %+v, want one idle connection closed", rep)
	}
	// A closed pool's gauges are no longer observed.
	if _, ok := s["db.client.connection.count"]; ok {
		if pts := s["db.client.connection.count"].Data.(metricdata.Sum[int64]).DataPoints; len(pts) > 0 {
			t.Errorf("db.client.connection.count still observed after the drain: %+v", pts)
		}
	}

	// The log: one line per decision.
	// One line per wave of discards, however many connections it took.
	if recs := logs.find("runpool: stale connections discarded"); len(recs) != 2 ||
		recs[0].attrs["count"].Int64() != 2 || recs[0].attrs["closed_by_server"].Int64() != 1 || recs[0].attrs["probe_failed"].Int64() != 1 ||
		recs[1].attrs["count"].Int64() != 1 || recs[1].attrs["freeze"].Int64() != 1 {
		t.Errorf("stale discards logged as %+v, want two lines: 2 (1 closed_by_server, 1 probe_failed), then 1 (freeze)", recs)
	}
	freezes := logs.find("runpool: freeze detected")
	if len(freezes) != 2 || freezes[0].level != slog.LevelInfo || freezes[0].attrs["idle"].Int64() != 1 ||
		strings.Contains(freezes[0].attrs["action"].String(), "discard") || !strings.Contains(freezes[1].attrs["action"].String(), "discard") {
		t.Errorf("freezes logged as %+v, want two Info lines with 1 idle: probe, then discard", freezes)
	}
	if recs := logs.find("runpool: drained"); len(recs) != 1 || recs[0].attrs["closed_idle"].Int64() != 1 || recs[0].level != slog.LevelInfo {
		t.Errorf("drain logged as %+v, want one Info line with closed_idle=1", recs)
	}
}

// The instruments' names, kinds and units are the semantic conventions'.
func TestMetricsSemanticConventions(t *testing.T) {
	rd := newReader(t)
	p, _, _ := openPool(t, runpool.Config{Name: "semconv", MeterProvider: rd.mp, MaxConns: 2, Logger: slog.New(slog.DiscardHandler)})
	ctx := ctxT(t, 10*time.Second)
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	short, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-short.Done()
	_, _ = p.Acquire(short)
	s := rd.collect()

	type kind int
	const (
		updown kind = iota
		counter
		histogram
	)
	for _, want := range []struct {
		name, unit string
		kind       kind
	}{
		{"db.client.connection.count", "{connection}", updown},
		{"db.client.connection.idle.max", "{connection}", updown},
		{"db.client.connection.idle.min", "{connection}", updown},
		{"db.client.connection.max", "{connection}", updown},
		{"db.client.connection.pending_requests", "{request}", updown},
		{"db.client.connection.timeouts", "{timeout}", counter},
		{"db.client.connection.create_time", "s", histogram},
		{"db.client.connection.wait_time", "s", histogram},
		{"db.client.connection.use_time", "s", histogram},
	} {
		m, ok := s[want.name]
		if !ok {
			t.Errorf("%s: not reported", want.name)
			continue
		}
		if m.Unit != want.unit {
			t.Errorf("%s: unit %q, want %q", want.name, m.Unit, want.unit)
		}
		var sets []attribute.Set
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			if want.kind == histogram || d.IsMonotonic != (want.kind == counter) {
				t.Errorf("%s: a sum, monotonic %v; want kind %d", want.name, d.IsMonotonic, want.kind)
			}
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		case metricdata.Histogram[float64]:
			if want.kind != histogram {
				t.Errorf("%s: a histogram, want kind %d", want.name, want.kind)
			}
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		default:
			t.Errorf("%s: %T", want.name, m.Data)
		}
		if len(sets) == 0 {
			t.Errorf("%s: no data point", want.name)
		}
		for _, set := range sets {
			if v, ok := set.Value("db.client.connection.pool.name"); !ok || v.AsString() != "semconv" {
				t.Errorf("%s: attributes %v lack db.client.connection.pool.name=semconv", want.name, set.ToSlice())
			}
		}
	}
	var states []string
	for _, p := range s["db.client.connection.count"].Data.(metricdata.Sum[int64]).DataPoints {
		v, _ := p.Attributes.Value("db.client.connection.state")
		states = append(states, v.AsString())
	}
	slices.Sort(states)
	if !slices.Equal(states, []string{"idle", "used"}) {
		t.Errorf("db.client.connection.count states %v, want idle and used", states)
	}
}

// TestTimingFollowsTheHistograms: whether a checkout is timed (wait_time,
// use_time) follows the two histograms' Enabled, asked again at every
// maintainer tick: histograms enabled after Open, as the global provider's
// are once the application calls otel.SetMeterProvider, are recorded into
// from the next tick on.
func TestTimingFollowsTheHistograms(t *testing.T) {
	mp := &toggledProvider{}
	p, _, _ := openPool(t, runpool.Config{MaxConns: 2, MaintainInterval: 10 * time.Millisecond, MeterProvider: mp})
	ctx := context.Background()
	cycle := func() {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.Release()
	}
	for range 3 {
		cycle()
	}
	if n := mp.records.Load(); n != 0 {
		t.Fatalf("%d wait_time/use_time records while both histograms were disabled, want 0", n)
	}
	mp.enabled.Store(true)
	for deadline := time.Now().Add(5 * time.Second); mp.records.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("checkouts still untimed 5 s after the histograms were enabled (MaintainInterval 10ms)")
		}
		cycle()
	}
}

// toggledProvider makes no-op instruments, but for the two histograms the
// checkout records: their Enabled is the provider's switch, and their
// Records are counted.
type toggledProvider struct {
	noop.MeterProvider
	enabled atomic.Bool
	records atomic.Int64
}

func (p *toggledProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return toggledMeter{p: p}
}

type toggledMeter struct {
	noop.Meter
	p *toggledProvider
}

func (m toggledMeter) Float64Histogram(name string, _ ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	if name == "db.client.connection.wait_time" || name == "db.client.connection.use_time" {
		return toggledHistogram{p: m.p}, nil
	}
	return noop.Float64Histogram{}, nil
}

type toggledHistogram struct {
	noop.Float64Histogram
	p *toggledProvider
}

func (h toggledHistogram) Enabled(context.Context) bool { return h.p.enabled.Load() }

func (h toggledHistogram) Record(context.Context, float64, ...metric.RecordOption) {
	h.p.records.Add(1)
}
