package runpool_test

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool"
	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkAcquireReleaseMetrics prices the metrics on the hot path, side
// by side in one process: parallel checkout and return of an idle
// connection (as many connections as goroutines, so nobody waits) with an
// SDK MeterProvider collecting, with the no-op one, and with an SDK
// provider whose View drops the two histograms the hot path records.
// On a machine shared with other work, wall time per operation says
// mostly how much of the CPU the benchmark got; cpu-ns/op (the process's
// CPU time per operation) says what the metrics cost. Compare with:
//
//	go test -run '^$' -bench AcquireReleaseMetrics -count 10 . | benchstat -col /metrics -
func BenchmarkAcquireReleaseMetrics(b *testing.B) {
	benchMetrics(b, func(ctx context.Context, p *pgxadapter.Pool) error {
		c, err := p.Acquire(ctx)
		if err != nil {
			return err
		}
		c.Release()
		return nil
	})
}

// BenchmarkQueryMetrics is the same with a SELECT 1 round trip per
// checkout: the metrics' cost beside the least work a request does.
//
//	go test -run '^$' -bench QueryMetrics -count 10 . | benchstat -col /metrics -
func BenchmarkQueryMetrics(b *testing.B) {
	benchMetrics(b, func(ctx context.Context, p *pgxadapter.Pool) error {
		_, err := p.Exec(ctx, "SELECT 1")
		return err
	})
}

var benchProviders = []struct {
	name string
	mp   func() metric.MeterProvider
}{
	{"off", func() metric.MeterProvider { return noop.NewMeterProvider() }},
	{"on", func() metric.MeterProvider {
		return sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	}},
	// runpool's own part of the cost: every instrument enabled, as with
	// an SDK, but a Record that does nothing. What is left between this
	// and "on" is the SDK's Record, the same for any library recording a
	// histogram per checkout.
	{"on-without-sdk", func() metric.MeterProvider { return enabledProvider{} }},
	// Every instrument but the two the hot path records, dropped by a
	// View: what a service that wants no per-checkout cost can do.
	{"on-without-hot-histograms", func() metric.MeterProvider {
		drop := sdkmetric.NewView(sdkmetric.Instrument{Name: "db.client.connection.*_time"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}})
		return sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()), sdkmetric.WithView(drop))
	}},
}

func benchMetrics(b *testing.B, op func(context.Context, *pgxadapter.Pool) error) {
	srv := pgtest.Shared(b)
	for _, c := range benchProviders {
		b.Run("metrics="+c.name, func(b *testing.B) {
			ctx := context.Background()
			p, _, _ := openPool(b, runpool.Config{MaxConns: 8, Logger: slog.New(slog.DiscardHandler), MeterProvider: c.mp()}, onServer(srv, ""))
			for range 8 { // open the connections before timing
				if err := op(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := op(ctx, p); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// enabledProvider is the no-op provider with histograms that say they are
// enabled, so the pool takes its timed path and records into nothing.
type enabledProvider struct{ noop.MeterProvider }

func (enabledProvider) Meter(string, ...metric.MeterOption) metric.Meter { return enabledMeter{} }

type enabledMeter struct{ noop.Meter }

func (enabledMeter) Float64Histogram(string, ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	return enabledHistogram{}, nil
}

type enabledHistogram struct{ noop.Float64Histogram }

func (enabledHistogram) Enabled(context.Context) bool { return true }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHistogramRecord prices the floor under the metrics' cost on the
// hot path: one Float64Histogram.Record on an SDK MeterProvider, with the
// attribute set built once (metric.WithAttributeSet), as Acquire and
// Release record wait_time and use_time. A checkout records twice. serial
// is one goroutine; parallel is RunParallel, all cores recording into one
// histogram point as the pool's callers do. deep-ctx records with a
// context eight values deep under a cancelable one, as a request's context
// may be, instead of context.Background(): the exemplar filter looks the
// span up in it.
//
//	go test -run '^$' -bench HistogramRecord -count 10 . | benchstat -col /ctx -
func BenchmarkHistogramRecord(b *testing.B) {
	type ctxKey int
	deep, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 8 {
		deep = context.WithValue(deep, ctxKey(i), i)
	}
	// Checkout-sized durations spread over a few buckets.
	values := [8]float64{2e-6, 3e-6, 5e-6, 8e-6, 1.3e-5, 2.1e-5, 6e-5, 1.2e-4}
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"background", context.Background()}, {"deep", deep}} {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		h, err := mp.Meter("bench").Float64Histogram("wait_time", metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
		if err != nil {
			b.Fatal(err)
		}
		rec := []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("db.client.connection.pool.name", "bench")))}
		ctx := c.ctx
		b.Run("mode=serial/ctx="+c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				h.Record(ctx, values[i&7], rec...)
				i++
			}
		})
		b.Run("mode=parallel/ctx="+c.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					h.Record(ctx, values[i&7], rec...)
					i++
				}
			})
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
		_ = mp.Shutdown(context.Background())
	}
}
