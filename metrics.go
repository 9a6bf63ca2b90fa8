package runpool

import (
	"context"
	"errors"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/dbconv"
)

// Metrics. The nine db.client.connection.* instruments of the
// OpenTelemetry semantic conventions (v1.43.0, development stability),
// plus runpool.* instruments for what only runpool knows. Every one
// carries db.client.connection.pool.name = Config.Name.
//
// Cost: the gauges (counts, limits, pending requests, fair share) are
// observed from the pool's own state when the provider collects, so they
// cost the hot path nothing. Acquire and Release record wait_time and
// use_time with attribute sets built once, allocating nothing; with a
// no-op provider, or the global one before an SDK is installed, they read
// no clock at all. Everything else is recorded where it happens, off the
// hot path: dials, stale discards, freezes, probes, back-offs, the drain
// (most of it through events.go).

// meterName is the instrumentation scope of the pool's instruments.
const meterName = "github.com/runpool/runpool"

// secondsBuckets are the histogram bounds for the *_time and duration
// instruments, in seconds: a checkout takes microseconds, a dial
// milliseconds, a freeze or a drain seconds. (The SDK's default bounds are
// meant for milliseconds.)
var secondsBuckets = []float64{
	0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

// Attribute keys of runpool's own instruments.
const (
	attrStaleReason  = attribute.Key("runpool.stale.reason")
	attrProbeResult  = attribute.Key("runpool.probe.result")
	attrDialResult   = attribute.Key("runpool.dial.result")
	attrDrainOutcome = attribute.Key("runpool.drain.outcome")
	attrDrainResult  = attribute.Key("runpool.drain.result")
)

// staleReason says why a connection was discarded as stale on checkout.
type staleReason int

const (
	staleClosedByServer staleReason = iota // the server had already ended the session (seen without I/O)
	staleProbeFailed                       // its checkout probe failed
	staleCohort                            // it idled longer than a sibling whose probe failed
	staleFreeze                            // the process was frozen longer than PathIdleTimeout
	numStaleReasons
)

var staleReasonNames = [numStaleReasons]string{"closed_by_server", "probe_failed", "cohort", "freeze"}

// Probe results and dial results, as attribute values.
const (
	probeOK, probeFailed, probeCancelled = 0, 1, 2
	dialOK, dialFailed, dialTooMany      = 0, 1, 2
)

// Drain outcomes: what became of the connections the drain found.
const (
	drainClosedIdle = iota
	drainReturned
	drainCancelled
	drainAbandoned
	numDrainOutcomes
)

// metrics holds one pool's instruments and the attribute options it
// records them with, all built once.
type metrics struct {
	// on is false for a no-op provider: the hot path then skips even its
	// clock reads, and no callback is registered.
	on bool

	// The hot path.
	waitTime metric.Float64Histogram
	useTime  metric.Float64Histogram
	rec      []metric.RecordOption // the pool's name
	pending  atomic.Int64          // callers inside a timed Acquire
	timed    atomic.Bool           // timing's answer (refreshTiming)

	add        []metric.AddOption
	createTime metric.Float64Histogram
	timeouts   metric.Int64Counter
	dials      metric.Int64Counter
	dialBy     [3][]metric.AddOption
	stale      metric.Int64Counter
	staleBy    [numStaleReasons][]metric.AddOption
	backoffs   metric.Int64Counter
	orphans    metric.Int64Counter
	freeze     metric.Float64Histogram
	probe      metric.Float64Histogram
	probeBy    [3][]metric.RecordOption
	drainConns metric.Int64Counter
	drainBy    [numDrainOutcomes][]metric.AddOption
	drainTime  metric.Float64Histogram
	drainDone  [2][]metric.RecordOption // incomplete, complete

	// Observed in the callback.
	meter     metric.Meter
	count     metric.Int64ObservableUpDownCounter
	idleMax   metric.Int64ObservableUpDownCounter
	idleMin   metric.Int64ObservableUpDownCounter
	max       metric.Int64ObservableUpDownCounter
	pendingRq metric.Int64ObservableUpDownCounter
	share     metric.Int64ObservableUpDownCounter
	borrowed  metric.Int64ObservableUpDownCounter
	waiting   metric.Int64ObservableUpDownCounter
	draining  metric.Int64ObservableUpDownCounter
	obs       []metric.ObserveOption
	idleObs   []metric.ObserveOption
	usedObs   []metric.ObserveOption
	reg       metric.Registration
	slots     slotMetrics // the budget slots' (slotsevents.go)
}

// newMetrics creates the pool's instruments on cfg's MeterProvider, the
// global one when it is nil. Errors (a provider refusing an instrument)
// are logged; the instrument then records nothing.
func newMetrics(cfg Config) *metrics {
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := &metrics{on: true}
	switch mp.(type) {
	case noop.MeterProvider, *noop.MeterProvider:
		m.on = false
	}
	mt := mp.Meter(meterName)
	m.meter = mt

	pool := semconv.DBClientConnectionPoolName(cfg.Name)
	with := func(kv ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{pool}, kv...)...))
	}
	poolOnly := with()
	m.rec = []metric.RecordOption{poolOnly}
	m.add = []metric.AddOption{poolOnly}
	m.obs = []metric.ObserveOption{poolOnly}
	m.idleObs = []metric.ObserveOption{with(semconv.DBClientConnectionStateIdle)}
	m.usedObs = []metric.ObserveOption{with(semconv.DBClientConnectionStateUsed)}
	for i, v := range []string{"ok", "failed", "too_many_connections"} {
		m.dialBy[i] = []metric.AddOption{with(attrDialResult.String(v))}
	}
	for i, v := range staleReasonNames {
		m.staleBy[i] = []metric.AddOption{with(attrStaleReason.String(v))}
	}
	for i, v := range []string{"ok", "failed", "cancelled"} {
		m.probeBy[i] = []metric.RecordOption{with(attrProbeResult.String(v))}
	}
	for i, v := range []string{"closed_idle", "returned", "cancelled", "abandoned"} {
		m.drainBy[i] = []metric.AddOption{with(attrDrainOutcome.String(v))}
	}
	m.drainDone[0] = []metric.RecordOption{with(attrDrainResult.String("incomplete"))}
	m.drainDone[1] = []metric.RecordOption{with(attrDrainResult.String("complete"))}

	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	buckets := metric.WithExplicitBucketBoundaries(secondsBuckets...)

	// The semantic conventions' instruments: names, units and
	// descriptions from the typed dbconv package.
	wait, err := dbconv.NewClientConnectionWaitTime(mt, buckets)
	keep(err)
	m.waitTime = wait.Inst()
	use, err := dbconv.NewClientConnectionUseTime(mt, buckets)
	keep(err)
	m.useTime = use.Inst()
	create, err := dbconv.NewClientConnectionCreateTime(mt, buckets)
	keep(err)
	m.createTime = create.Inst()
	timeouts, err := dbconv.NewClientConnectionTimeouts(mt)
	keep(err)
	m.timeouts = timeouts.Inst()
	count, err := dbconv.NewClientConnectionCountObservable(mt)
	keep(err)
	m.count = count.Inst()
	idleMax, err := dbconv.NewClientConnectionIdleMaxObservable(mt)
	keep(err)
	m.idleMax = idleMax.Inst()
	idleMin, err := dbconv.NewClientConnectionIdleMinObservable(mt)
	keep(err)
	m.idleMin = idleMin.Inst()
	maxConns, err := dbconv.NewClientConnectionMaxObservable(mt)
	keep(err)
	m.max = maxConns.Inst()
	pending, err := dbconv.NewClientConnectionPendingRequestsObservable(mt)
	keep(err)
	m.pendingRq = pending.Inst()

	// runpool's own.
	m.stale, err = mt.Int64Counter("runpool.connection.stale_discarded", metric.WithUnit("{connection}"),
		metric.WithDescription("Connections discarded on checkout as stale, by runpool.stale.reason: closed_by_server, probe_failed, cohort (idled longer than a sibling whose probe failed) or freeze (the process was frozen longer than PathIdleTimeout)."))
	keep(err)
	m.freeze, err = mt.Float64Histogram("runpool.freeze.duration", metric.WithUnit("s"), buckets,
		metric.WithDescription("Freezes of the process the pool noticed (its clock jumped past a maintainer tick), and how long each lasted."))
	keep(err)
	m.probe, err = mt.Float64Histogram("runpool.probe.duration", metric.WithUnit("s"), buckets,
		metric.WithDescription("Checkout probes of connections that may have gone stale, by runpool.probe.result: ok, failed or cancelled (the caller gave up)."))
	keep(err)
	m.backoffs, err = mt.Int64Counter("runpool.backoffs", metric.WithUnit("{backoff}"),
		metric.WithDescription("Waits after the server refused a connection with 53300 (too many connections): back-pressure."))
	keep(err)
	m.orphans, err = mt.Int64Counter("runpool.orphans.ended", metric.WithUnit("{session}"),
		metric.WithDescription("Server sessions of connections given up as dead (behind a NAT that forgot the flow) that the pool ended through a live connection, rather than leave their slots to the server's timeouts."))
	keep(err)
	m.dials, err = mt.Int64Counter("runpool.dials", metric.WithUnit("{dial}"),
		metric.WithDescription("Connection attempts, by runpool.dial.result: ok, failed or too_many_connections (53300)."))
	keep(err)
	m.drainConns, err = mt.Int64Counter("runpool.drain.connections", metric.WithUnit("{connection}"),
		metric.WithDescription("What the drain did with the connections it found, by runpool.drain.outcome: closed_idle, returned (in use, closed on release), cancelled (work cancelled at the deadline; also counted as returned or abandoned) or abandoned (still in use when the drain gave up)."))
	keep(err)
	m.drainTime, err = mt.Float64Histogram("runpool.drain.duration", metric.WithUnit("s"), buckets,
		metric.WithDescription("How long each drain took, by runpool.drain.result: complete, or incomplete (connections abandoned at the deadline)."))
	keep(err)
	m.share, err = mt.Int64ObservableUpDownCounter("runpool.budget.fair_share", metric.WithUnit("{connection}"),
		metric.WithDescription("This instance's share of the connection budget: the fair share when it may borrow beyond it, else db.client.connection.max."))
	keep(err)
	m.borrowed, err = mt.Int64ObservableUpDownCounter("runpool.connection.borrowed", metric.WithUnit("{connection}"),
		metric.WithDescription("Open connections beyond the fair share, on a lease (given back within seconds)."))
	keep(err)
	m.waiting, err = mt.Int64ObservableUpDownCounter("runpool.backpressure.waiting", metric.WithUnit("{request}"),
		metric.WithDescription("Callers waiting out a 53300 (the server is full) now."))
	keep(err)
	m.draining, err = mt.Int64ObservableUpDownCounter("runpool.draining", metric.WithUnit("{pool}"),
		metric.WithDescription("1 while the pool drains (after SIGTERM), else 0."))
	keep(err)

	m.slots.init(mt, keep)
	m.refreshTiming()

	if err := errors.Join(errs...); err != nil {
		cfg.Logger.Warn("runpool: metrics: the MeterProvider refused an instrument", "pool", cfg.Name, "err", err)
	}
	return m
}

// timing reports whether Acquire should time this checkout: a real
// provider with wait_time or use_time enabled. A View that drops both
// makes the hot path cost what it does with metrics off (and
// pending_requests, counted only here, then reads 0).
func (m *metrics) timing() bool { return m.timed.Load() }

// refreshTiming asks the histograms whether they are enabled, for timing.
// It runs when the pool opens and at each maintainer tick, not on every
// checkout: two interface calls there cost more than the rest of the
// check-in. A provider installed later (otel.SetMeterProvider behind the
// global one) is timed from the next tick on.
func (m *metrics) refreshTiming() {
	ctx := context.Background()
	m.timed.Store(m.on && (m.waitTime.Enabled(ctx) || m.useTime.Enabled(ctx)))
}

func nanosToSeconds(nanos int64) float64 { return float64(nanos) / 1e9 }

// registerGauges registers the callback that observes the pool's state.
// Shutdown unregisters it.
func (p *Pool[C]) registerGauges() {
	m := p.m
	if !m.on {
		return
	}
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := p.Stat()
		o.ObserveInt64(m.count, int64(s.IdleConns()), m.idleObs...)
		o.ObserveInt64(m.count, int64(s.AcquiredConns()), m.usedObs...)
		o.ObserveInt64(m.idleMax, int64(p.cfg.MaxConns), m.obs...) // no idle cap below the maximum
		o.ObserveInt64(m.idleMin, int64(p.cfg.MinConns), m.obs...)
		o.ObserveInt64(m.max, int64(p.cfg.MaxConns), m.obs...)
		o.ObserveInt64(m.pendingRq, m.pending.Load(), m.obs...)
		share := p.cfg.fairShare
		if share == 0 {
			share = p.cfg.MaxConns
		}
		o.ObserveInt64(m.share, int64(share), m.obs...)
		o.ObserveInt64(m.borrowed, p.borrowedOpen.Load(), m.obs...)
		o.ObserveInt64(m.waiting, int64(p.bp.callers.Load()), m.obs...)
		var draining int64
		if p.draining.Load() {
			draining = 1
		}
		o.ObserveInt64(m.draining, draining, m.obs...)
		return nil
	}, m.count, m.idleMax, m.idleMin, m.max, m.pendingRq, m.share, m.borrowed, m.waiting, m.draining)
	if err != nil {
		p.cfg.Logger.Warn("runpool: metrics: cannot register the gauges' callback", "pool", p.cfg.Name, "err", err)
		return
	}
	m.reg = reg
	p.registerSlotGauge()
}

func (p *Pool[C]) unregisterGauges() {
	if p.m.reg != nil {
		_ = p.m.reg.Unregister()
	}
	p.unregisterSlotGauge()
}
