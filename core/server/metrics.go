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
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_core_requests_total",
			Help: "Kafka requests handled, by API name and error (\"none\" when the whole request succeeded).",
		}, []string{"api", "error"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tributary_core_bytes_in_total",
			Help: "Bytes of request frames read from clients.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tributary_core_bytes_out_total",
			Help: "Bytes of response frames written to clients.",
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tributary_core_connections",
			Help: "Open client connections.",
		}),
		connTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tributary_core_connections_total",
			Help: "Client connections accepted.",
		}),
		badFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tributary_core_bad_frames_total",
			Help: "Connections closed because a frame was malformed, too large or unsupported.",
		}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_core_produce_batches_total",
			Help: "Produced batches per outcome (appended, duplicate, rejected).",
		}, []string{"outcome"}),
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
