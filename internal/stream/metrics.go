package stream

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the aggregations' Prometheus metrics, labelled by
// aggregation name.
type Metrics struct {
	records         *prometheus.CounterVec
	late            *prometheus.CounterVec
	skipped         *prometheus.CounterVec
	outputs         *prometheus.CounterVec
	deduplicated    *prometheus.CounterVec
	windowsOpen     *prometheus.GaugeVec
	lagRecords      *prometheus.GaugeVec
	lagSeconds      *prometheus.GaugeVec
	watermark       *prometheus.GaugeVec
	checkpoints     *prometheus.CounterVec
	checkpointTime  *prometheus.GaugeVec
	checkpointBytes *prometheus.GaugeVec
	restarts        *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	l := []string{"aggregation"}
	m := &Metrics{
		records:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tributary_stream_records_total", Help: "Input records processed."}, l),
		late:            prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tributary_stream_records_late_total", Help: "Records that arrived after every window they belong to had closed."}, l),
		skipped:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tributary_stream_records_skipped_total", Help: "Records (or fields of records) skipped, by reason: missing_field, not_a_number, non_finite, malformed_payload, absurd_timestamp."}, []string{"aggregation", "reason"}),
		outputs:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tributary_stream_outputs_total", Help: "Output records written (results, deadband readings, side-topic records)."}, l),
		deduplicated:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tributary_stream_outputs_deduplicated_total", Help: "Outputs re-derived after a restart and not written again because the previous run had written them."}, l),
		windowsOpen:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tributary_stream_windows_open", Help: "(group, window) pairs being accumulated."}, l),
		lagRecords:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tributary_stream_input_lag_records", Help: "Records in the source partitions not processed yet."}, l),
		lagSeconds:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tributary_stream_input_lag_seconds", Help: "Wall clock minus the newest event time processed."}, l),
		watermark:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tributary_stream_watermark_seconds", Help: "Event time (unix seconds) up to which windows are closed."}, l),
		checkpoints:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tributary_stream_checkpoints_total", Help: "Checkpoints saved."}, l),
		checkpointTime:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tributary_stream_last_checkpoint_timestamp_seconds", Help: "When the last checkpoint was saved (unix seconds); checkpoint age = time() - this."}, l),
		checkpointBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tributary_stream_checkpoint_state_bytes", Help: "Size of the last checkpoint's engine state."}, l),
		restarts:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tributary_stream_restarts_total", Help: "Times an aggregation restarted from its checkpoint after an error."}, l),
	}
	reg.MustRegister(m.records, m.late, m.skipped, m.outputs, m.deduplicated, m.windowsOpen, m.lagRecords, m.lagSeconds,
		m.watermark, m.checkpoints, m.checkpointTime, m.checkpointBytes, m.restarts)
	return m
}

// observe publishes the engine's counters as deltas since prev.
func (r *Runner) observe(prev *Counters, c Counters, deduped uint64, lag int64, lastEventTs int64, wm int64) {
	m := r.Metrics
	if m == nil {
		*prev = c
		return
	}
	n := r.Agg.Name
	m.records.WithLabelValues(n).Add(float64(c.Records - prev.Records))
	m.late.WithLabelValues(n).Add(float64(c.Late - prev.Late))
	for reason, v := range c.Skipped {
		if d := v - prev.Skipped[reason]; d > 0 {
			m.skipped.WithLabelValues(n, reason).Add(float64(d))
		}
	}
	if c.Outputs >= prev.Outputs+deduped {
		m.outputs.WithLabelValues(n).Add(float64(c.Outputs - prev.Outputs - deduped))
	}
	m.deduplicated.WithLabelValues(n).Add(float64(deduped))
	m.windowsOpen.WithLabelValues(n).Set(float64(c.WindowsOpen))
	m.lagRecords.WithLabelValues(n).Set(float64(lag))
	if lastEventTs > 0 {
		m.lagSeconds.WithLabelValues(n).Set(time.Since(time.UnixMilli(lastEventTs)).Seconds())
	}
	if wm > 0 {
		m.watermark.WithLabelValues(n).Set(float64(wm) / 1000)
	}
	*prev = c
}
