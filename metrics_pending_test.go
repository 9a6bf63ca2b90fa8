package runpool

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// TestStripedCounter: once the Adds are done, Load is their sum, whatever
// the stripes they went to.
func TestStripedCounter(t *testing.T) {
	var c stripedCounter
	c.init()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10000 {
				c.Add(1)
				c.Add(-1)
			}
			c.Add(1)
		})
	}
	wg.Wait()
	if got := c.Load(); got != 4 {
		t.Fatalf("Load() = %d after 4 net +1s, want 4", got)
	}
	for range 4 {
		c.Add(-1)
	}
	if got := c.Load(); got != 0 {
		t.Fatalf("Load() = %d, want 0", got)
	}
}

// BenchmarkPending prices metrics.pending on the hot path: the +1 and -1
// of one timed Acquire, from every core at once, on one shared atomic and
// on the striped counter (a stripe per P).
//
//	go test -run '^$' -bench Pending -count 10 . | benchstat -col /counter -
func BenchmarkPending(b *testing.B) {
	var shared atomic.Int64
	var striped stripedCounter
	striped.init()
	for _, c := range []struct {
		name string
		add  func(int64)
	}{{"atomic", func(d int64) { shared.Add(d) }}, {"striped", striped.Add}} {
		b.Run("counter="+c.name, func(b *testing.B) {
			add := c.add
			cpu := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					add(1)
					add(-1)
				}
			})
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkMetricsHotPath is what the metrics add to one checkout and
// return, without the pool: the timing check, three clock reads, pending's
// +1 and -1 and the two histogram Records, on an SDK provider, from every
// core at once; pending on one shared atomic and on the striped counter.
// Most of it is the SDK's Record (see BenchmarkHistogramRecord).
//
//	go test -run '^$' -bench MetricsHotPath -count 10 . | benchstat -col /counter -
func BenchmarkMetricsHotPath(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	m := newMetrics(Config{Name: "bench", MeterProvider: mp, Logger: slog.New(slog.DiscardHandler)})
	var shared atomic.Int64
	for _, c := range []struct {
		name string
		add  func(int64)
	}{{"atomic", func(d int64) { shared.Add(d) }}, {"striped", m.pending.Add}} {
		b.Run("counter="+c.name, func(b *testing.B) {
			add := c.add
			cpu := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if !m.timing(ctx) {
						panic("metrics off")
					}
					start := nanotime()
					add(1)
					add(-1)
					now := nanotime()
					m.waitTime.Record(ctx, nanosToSeconds(now-start), m.rec...)
					m.useTime.Record(context.Background(), nanosToSeconds(nanotime()-now), m.rec...)
				}
			})
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's CPU time (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
