package main

import (
	"context"
	"log/slog"
	"os"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// setupMetrics starts exporting metrics as the standard OpenTelemetry
// environment says:
//
//	OTEL_METRICS_EXPORTER=prometheus   serve /metrics on OTEL_EXPORTER_PROMETHEUS_HOST:PORT (default localhost:9464)
//	OTEL_METRICS_EXPORTER=otlp         push to OTEL_EXPORTER_OTLP_ENDPOINT (OTEL_EXPORTER_OTLP_PROTOCOL)
//	OTEL_METRICS_EXPORTER=console      print to stdout every OTEL_METRIC_EXPORT_INTERVAL
//	OTEL_METRICS_EXPORTER=none         nothing
//
// Unset means none here (the specification's default is otlp), so the
// example runs anywhere without a collector. It returns the provider for
// the pool (also installed as the global one, for other libraries) and the
// function that flushes and stops the exporter: call it after the pool has
// drained, so the drain's own metrics go out too.
func setupMetrics(ctx context.Context) (metric.MeterProvider, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	if os.Getenv("OTEL_METRICS_EXPORTER") == "" {
		return noop.NewMeterProvider(), none, nil
	}
	reader, err := autoexport.NewMetricReader(ctx)
	if err != nil {
		return nil, nil, err
	}
	if autoexport.IsNoneMetricReader(reader) {
		return noop.NewMeterProvider(), reader.Shutdown, nil
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	otel.SetMeterProvider(mp)
	slog.Info("exporting metrics", "exporter", os.Getenv("OTEL_METRICS_EXPORTER"))
	return mp, mp.Shutdown, nil
}
