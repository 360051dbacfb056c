package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics live in a per-server registry so tests can run several brokers in
// one process.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	connections prometheus.Gauge
	connTotal   prometheus.Counter
	badFrames   prometheus.Counter
	records     *prometheus.CounterVec
	latency     *prometheus.HistogramVec
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: counterVec("tributary_core_requests_total",
			"Kafka requests handled, by API name and error (\"none\" when the whole request succeeded).", "api", "error"),
		bytesIn: counter("tributary_core_bytes_in_total",
			"Bytes of request frames read from clients."),
		bytesOut: counter("tributary_core_bytes_out_total",
			"Bytes of response frames written to clients."),
		connections: gauge("tributary_core_connections",
			"Open client connections."),
		connTotal: counter("tributary_core_connections_total",
			"Client connections accepted."),
		badFrames: counter("tributary_core_bad_frames_total",
			"Connections closed because a frame was malformed, too large or unsupported."),
		records: counterVec("tributary_core_produce_batches_total",
			"Produced batches per outcome (appended, duplicate, rejected).", "outcome"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tributary_core_request_seconds",
			Help:    "Time from decoding a request to having its response, by API (long polls and group joins include their wait).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100µs .. ~26s
		}, []string{"api"}),
	}
	reg.MustRegister(m.latency, m.requests, m.bytesIn, m.bytesOut, m.connections, m.connTotal, m.badFrames, m.records,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Short constructors for the metrics above and elsewhere in the broker:
// name and help are all any of them sets.

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func gaugeFunc(name, help string, value func() float64) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value)
}
