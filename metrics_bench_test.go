package runpool_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/runpool/runpool/internal/pgtest"
	"github.com/runpool/runpool/pgxadapter"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkAcquireReleaseMetrics prices the metrics on the hot path, side
// by side in one process: parallel checkout and return of an idle
// connection (as many connections as goroutines, so nobody waits) with an
// SDK MeterProvider collecting, and with the no-op one.
// Compare with:
//
//	go test -run '^$' -bench AcquireReleaseMetrics -count 10 . | benchstat -col /metrics -
func BenchmarkAcquireReleaseMetrics(b *testing.B) {
	srv := pgtest.Shared(b)
	for _, c := range []struct {
		name string
		mp   func() metric.MeterProvider
	}{
		{"off", func() metric.MeterProvider { return noop.NewMeterProvider() }},
		{"on", func() metric.MeterProvider {
			return sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		}},
	} {
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
			acquireRelease := func() {
				c, err := p.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				c.Release()
			}
			for range 8 { // open the connections before timing
				acquireRelease()
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					acquireRelease()
				}
			})
		})
	}
}
