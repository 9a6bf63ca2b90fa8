package runpool_test

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/runpool/runpool/internal/pgtest"
	"github.com/runpool/runpool/pgxadapter"
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
			cfg, err := pgxadapter.ParseConfig(srv.URL())
			if err != nil {
				b.Fatal(err)
			}
			cfg.Pool.MaxConns = 8
			cfg.Pool.Logger = slog.New(slog.DiscardHandler)
			cfg.Pool.MeterProvider = c.mp()
			p, err := pgxadapter.New(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
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

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
