package runpool_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/runpool/runpool/internal/testbed/pgtest"
	"github.com/runpool/runpool/pgxadapter"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Metrics: give the pool a MeterProvider (Config.MeterProvider; the
// global one, otel.GetMeterProvider, when unset) and name the pool, which
// labels every instrument (db.client.connection.pool.name). Here a
// ManualReader shows what the pool reports; a service would use the
// exporter its environment names instead, as examples/service does with
// go.opentelemetry.io/contrib/exporters/autoexport.
func Example_metrics() {
	ctx := context.Background()
	url := os.Getenv("DATABASE_URL")
	if url == "" { // a throwaway server, as examples/service starts one
		srv, stop, err := pgtest.StartEmbedded(pgtest.Options{})
		if err != nil {
			log.Fatal(err)
		}
		defer stop()
		url = srv.URL()
	}

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(ctx)

	cfg, err := pgxadapter.ParseConfig(url)
	if err != nil {
		log.Fatal(err)
	}
	cfg.Pool.Name = "orders"
	cfg.Pool.MeterProvider = provider
	cfg.Pool.Logger = slog.New(slog.DiscardHandler) // keep the start-up line out of the output
	pool, err := pgxadapter.NewWithConfig(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
		log.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && strings.HasPrefix(m.Name, "db.") {
				pt := h.DataPoints[0]
				pool, _ := pt.Attributes.Value("db.client.connection.pool.name")
				lines = append(lines, fmt.Sprintf("%s (%s, pool %s): %d", m.Name, m.Unit, pool.AsString(), pt.Count))
			}
		}
	}
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// db.client.connection.create_time (s, pool orders): 1
	// db.client.connection.use_time (s, pool orders): 1
	// db.client.connection.wait_time (s, pool orders): 1
}
