package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// samples is one scrape of a Prometheus text endpoint, by metric name.
type samples map[string]*dto.MetricFamily

// parseMetrics reads the Prometheus text exposition format.
func parseMetrics(r io.Reader) (samples, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return samples(fams), nil
}

// scrape fetches and parses url (a /metrics endpoint).
func scrape(ctx context.Context, client *http.Client, url string) (samples, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	s, err := parseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return s, nil
}

// value is a counter's, gauge's or untyped sample's value.
func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// sum adds every sample of metric name; has says whether there was any.
func (s samples) sum(name string) (total float64, has bool) {
	f, ok := s[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		total += value(m)
	}
	return total, len(f.GetMetric()) > 0
}

// sumBy adds the samples of metric name per value of label by.
func (s samples) sumBy(name, by string) map[string]float64 {
	out := map[string]float64{}
	f, ok := s[name]
	if !ok {
		return out
	}
	for _, m := range f.GetMetric() {
		out[label(m, by)] += value(m)
	}
	return out
}

// edgeTotals is what the view shows of one edge, read from its /metrics.
type edgeTotals struct {
	// Appended counts records stored in the edge's log, dead letters included.
	Appended float64
	// DeadLetters counts publishes kept in a dead-letter stream.
	DeadLetters float64
	// Refused counts publishes neither stored nor acknowledged as success.
	Refused float64
	// LogBytes is what the edge's partition logs hold on disk.
	LogBytes float64
	// Bridge is false when the edge exposes no bridge metrics (yet).
	Bridge bool
	// Forwarded counts records the core acknowledged; Backlog is what waits.
	Forwarded, Backlog float64
}

func edgeTotalsFrom(s samples) edgeTotals {
	var t edgeTotals
	t.Appended, _ = s.sum("tributary_edge_records_appended_total")
	t.DeadLetters, _ = s.sum("tributary_edge_dead_letters_total")
	t.Refused, _ = s.sum("tributary_edge_publishes_refused_total")
	t.LogBytes, _ = s.sum("tributary_edge_log_bytes")
	var fwd, backlog bool
	t.Forwarded, fwd = s.sum("tributary_bridge_forwarded_records_total")
	t.Backlog, backlog = s.sum("tributary_bridge_backlog_records")
	t.Bridge = fwd || backlog
	return t
}

// fleetTotals is one tributary-sim fleet, read from its --metrics-addr.
type fleetTotals struct {
	Connected, Acked, Dropped, Queued float64
}

func fleetTotalsFrom(s samples) fleetTotals {
	var t fleetTotals
	t.Connected, _ = s.sum("tributary_sim_devices_connected")
	t.Acked, _ = s.sum("tributary_sim_readings_acked_total")
	t.Dropped, _ = s.sum("tributary_sim_readings_dropped_total")
	t.Queued, _ = s.sum("tributary_sim_queued_readings")
	return t
}

// rate is a counter's per-second increase between two readings; a counter
// that went down was reset (its process restarted) and counts from zero.
func rate(prev, cur float64, dt time.Duration) float64 {
	if dt <= 0 {
		return 0
	}
	d := cur - prev
	if d < 0 {
		d = cur
	}
	return d / dt.Seconds()
}
