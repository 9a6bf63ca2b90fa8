package main

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"testing"
)

// With OTEL_METRICS_EXPORTER=prometheus the service serves the pool's
// metrics, under the semantic conventions' names, on the port the
// standard variables name.
func TestPrometheusMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s, _, _ := startService(t, "OTEL_METRICS_EXPORTER=prometheus",
		"OTEL_EXPORTER_PROMETHEUS_HOST=127.0.0.1", fmt.Sprintf("OTEL_EXPORTER_PROMETHEUS_PORT=%d", port))

	const requests = 5
	for range requests {
		if a := get("http://" + s.addr + "/work?ms=10"); a.err != nil || a.code != 200 {
			t.Fatalf("GET /work: %d %q %v", a.code, a.body, a.err)
		}
	}
	a := get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if a.err != nil || a.code != 200 {
		t.Fatalf("GET /metrics: %d %v", a.code, a.err)
	}
	// Every request's connection is back: idle, none used.
	for _, want := range []struct {
		re       string
		min, max float64
	}{
		{`(?m)^db_client_connection_count\{[^}]*db_client_connection_state="idle"[^}]*\} (\S+)$`, 1, 1e9},
		{`(?m)^db_client_connection_count\{[^}]*db_client_connection_state="used"[^}]*\} (\S+)$`, 0, 0},
		{`(?m)^db_client_connection_wait_time_seconds_count\{[^}]*db_client_connection_pool_name="runpool"[^}]*\} (\S+)$`, requests, 1e9},
		{`(?m)^db_client_connection_max\{[^}]*\} (\S+)$`, 1, 1e9},
	} {
		m := regexp.MustCompile(want.re).FindStringSubmatch(a.body)
		if m == nil {
			t.Errorf("no line matching %s in:\n%s", want.re, a.body)
			continue
		}
		if v, err := strconv.ParseFloat(m[1], 64); err != nil || v < want.min || v > want.max {
			t.Errorf("%s: want a value in [%v, %v]", m[0], want.min, want.max)
		}
	}
}
