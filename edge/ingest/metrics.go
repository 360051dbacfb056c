package ingest

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ingest counters, registered on the gateway's own registry
// so several gateways can run in one test process.
type metrics struct {
	connects        *prometheus.CounterVec // result: accepted, refused
	refusedConnects *prometheus.CounterVec // reason
	refused         *prometheus.CounterVec // publishes refused, by reason
	appended        *prometheus.CounterVec // records appended, by stream
	deadLetters     *prometheus.CounterVec // by short reason
	dropped         prometheus.Counter     // records removed by drop-oldest
	duplicates      prometheus.Counter     // re-sends acknowledged without storing
	retainedClears  prometheus.Counter     // empty retained publishes (not stored)
	timeReplaced    *prometheus.CounterVec // device times outside the rule's window, by rule
	sparkplug       *prometheus.CounterVec // Sparkplug anomalies, by kind
	// appendSeconds by QoS 0, 1, 2, resolved once: a label lookup per
	// publish hashes the label value under a lock.
	appendSeconds [3]prometheus.Observer
}

// Refusal reasons (label values of tributary_edge_publishes_refused_total).
const (
	ReasonACL       = "acl"
	ReasonOversized = "oversized"
	ReasonBudget    = "budget"
	ReasonDiskFull  = "disk_full"
	ReasonStorage   = "storage_error"
	ReasonClosing   = "closing"
)

func newMetrics(reg prometheus.Registerer, totalSize func() float64) *metrics {
	appendSeconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tributary_edge_append_seconds",
		Help:    "Time to append a publish, including the fsync wait for QoS 1/2.",
		Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"qos"})
	m := &metrics{
		connects:        newCounterVec("tributary_edge_connects_total", "MQTT CONNECTs by result (accepted, refused).", "result"),
		refusedConnects: newCounterVec("tributary_edge_connects_refused_total", "Refused MQTT CONNECTs by reason.", "reason"),
		refused:         newCounterVec("tributary_edge_publishes_refused_total", "PUBLISHes not stored and not acknowledged as success, by reason.", "reason"),
		appended:        newCounterVec("tributary_edge_records_appended_total", "Records appended to the local log, by stream (dead-letter streams included).", "stream"),
		deadLetters:     newCounterVec("tributary_edge_dead_letters_total", "Publishes kept in a dead-letter stream, by ingest rule and kind of failure.", "rule", "kind"),
		dropped:         newCounter("tributary_edge_budget_dropped_records_total", "Records deleted by the drop-oldest disk budget policy."),
		duplicates:      newCounter("tributary_edge_duplicates_total", "QoS 1/2 re-sends already stored (same stream, device, seq and ts; or, without a seq, an MQTT DUP re-send with the same packet id and payload), acknowledged without storing."),
		retainedClears:  newCounter("tributary_edge_retained_clears_total", "Empty retained publishes (clearing a retained message), acknowledged and not stored."),
		timeReplaced:    newCounterVec("tributary_edge_device_time_replaced_total", "Device times outside the rule's max_age/max_future window, replaced or clamped (original in the device-time header), by rule.", "rule"),
		sparkplug:       newCounterVec("tributary_edge_sparkplug_anomalies_total", "Sparkplug B messages stored with an anomaly header (seq gap, data before birth, unknown alias...), by anomaly.", "anomaly"),
	}
	for q := range m.appendSeconds {
		m.appendSeconds[q] = appendSeconds.WithLabelValues(strconv.Itoa(q))
	}
	reg.MustRegister(m.connects, m.refusedConnects, m.refused, m.appended, m.deadLetters, m.dropped, m.duplicates, m.retainedClears, m.timeReplaced, m.sparkplug, appendSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tributary_edge_log_bytes",
			Help: "Bytes held by all local partition logs (what the disk budget counts).",
		}, totalSize))
	return m
}

func newCounter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func newCounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}
