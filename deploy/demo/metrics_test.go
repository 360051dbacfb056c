package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// edgeMetrics is an excerpt of a bridged edge's /metrics.
const edgeMetrics = `# HELP tributary_edge_records_appended_total Records appended to the local log, by stream (dead-letter streams included).
# TYPE tributary_edge_records_appended_total counter
tributary_edge_records_appended_total{stream="sensors"} 1200
tributary_edge_records_appended_total{stream="sensors.dlq"} 3
# HELP tributary_edge_dead_letters_total Publishes kept in a dead-letter stream, by kind of failure.
# TYPE tributary_edge_dead_letters_total counter
tributary_edge_dead_letters_total{kind="decode"} 3
# HELP tributary_edge_log_bytes Bytes held by all local partition logs.
# TYPE tributary_edge_log_bytes gauge
tributary_edge_log_bytes 524288
# HELP tributary_edge_append_seconds Time to append a publish.
# TYPE tributary_edge_append_seconds histogram
tributary_edge_append_seconds_bucket{qos="1",le="0.001"} 10
tributary_edge_append_seconds_bucket{qos="1",le="+Inf"} 12
tributary_edge_append_seconds_sum{qos="1"} 0.02
tributary_edge_append_seconds_count{qos="1"} 12
# HELP tributary_bridge_forwarded_records_total Records the core acknowledged (acks=all).
# TYPE tributary_bridge_forwarded_records_total counter
tributary_bridge_forwarded_records_total{stream="sensors"} 1150
# HELP tributary_bridge_backlog_records Records in the edge log not yet acknowledged by the core.
# TYPE tributary_bridge_backlog_records gauge
tributary_bridge_backlog_records{partition="0",stream="sensors"} 20
tributary_bridge_backlog_records{partition="1",stream="sensors"} 30
tributary_bridge_backlog_records{partition="0",stream="sensors.dlq"} 3
`

func TestEdgeTotalsFromBridgedEdge(t *testing.T) {
	t.Parallel()
	s, err := parseMetrics(strings.NewReader(edgeMetrics))
	if err != nil {
		t.Fatal(err)
	}
	got := edgeTotalsFrom(s)
	want := edgeTotals{Appended: 1203, DeadLetters: 3, LogBytes: 524288, Bridge: true, Forwarded: 1150, Backlog: 53}
	if got != want {
		t.Fatalf("edgeTotalsFrom = %+v, want %+v", got, want)
	}
	if by := s.sumBy("tributary_bridge_backlog_records", "stream"); by["sensors"] != 50 || by["sensors.dlq"] != 3 {
		t.Fatalf("backlog by stream = %v", by)
	}
}

func TestEdgeTotalsWithoutBridge(t *testing.T) {
	t.Parallel()
	text := "# TYPE tributary_edge_records_appended_total counter\ntributary_edge_records_appended_total{stream=\"sensors\"} 7\n"
	s, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := edgeTotalsFrom(s); got.Bridge || got.Appended != 7 || got.Backlog != 0 {
		t.Fatalf("edgeTotalsFrom = %+v, want 7 appended and no bridge", got)
	}
}

func TestParseMetricsRejectsGarbage(t *testing.T) {
	t.Parallel()
	if _, err := parseMetrics(strings.NewReader("this is { not metrics\n")); err == nil {
		t.Fatal("parseMetrics accepted garbage")
	}
}

// TestScrapeFleetRegistry reads a real client_golang registry over HTTP,
// registered the way tributary-sim registers its fleet metrics.
func TestScrapeFleetRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tributary_sim_devices_connected", Help: "h"}, func() float64 { return 199 }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tributary_sim_readings_acked_total", Help: "h"}, func() float64 { return 4000 }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tributary_sim_readings_dropped_total", Help: "h"}, func() float64 { return 2 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tributary_sim_queued_readings", Help: "h"}, func() float64 { return 5 }),
	)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	s, err := scrape(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fleetTotalsFrom(s), (fleetTotals{Connected: 199, Acked: 4000, Dropped: 2, Queued: 5}); got != want {
		t.Fatalf("fleetTotalsFrom = %+v, want %+v", got, want)
	}

	bad := httptest.NewServer(http.NotFoundHandler())
	defer bad.Close()
	if _, err := scrape(context.Background(), bad.Client(), bad.URL); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("scrape of a 404 = %v, want an error naming the status", err)
	}
}

func TestRate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		prev, cur float64
		dt        time.Duration
		want      float64
	}{
		{100, 300, 2 * time.Second, 100},
		{100, 100, time.Second, 0},
		{500, 50, time.Second, 50}, // restarted process: counts from zero
		{0, 10, 0, 0},              // first refresh has no interval
	} {
		if got := rate(c.prev, c.cur, c.dt); got != c.want {
			t.Errorf("rate(%v, %v, %v) = %v, want %v", c.prev, c.cur, c.dt, got, c.want)
		}
	}
}
