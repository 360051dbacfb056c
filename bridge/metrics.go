package bridge

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bridge's counters; per-partition gauges (backlog, cursor,
// last-ack age) are computed from Status at scrape time by statusCollector,
// so they can never drift from what Status reports.
type metrics struct {
	records  *prometheus.CounterVec // stream
	bytes    *prometheus.CounterVec // stream
	retries  *prometheus.CounterVec // stream, reason
	skipped  *prometheus.CounterVec // stream
	gaps     *prometheus.CounterVec // stream
	tooLarge *prometheus.CounterVec // stream
	rewound  *prometheus.CounterVec // stream
	corrupt  *prometheus.CounterVec // stream
}

func newMetrics(reg prometheus.Registerer, b *Bridge) (*metrics, error) {
	m := &metrics{
		records: perStream("tributary_bridge_forwarded_records_total",
			"Records the core acknowledged (acks=all)."),
		bytes: perStream("tributary_bridge_forwarded_bytes_total",
			"Compressed batch bytes the core acknowledged."),
		retries: perStream("tributary_bridge_retries_total",
			"Forwarding attempts that failed and were retried after a backoff, by reason.", "reason"),
		skipped: perStream("tributary_bridge_unforwarded_dropped_records_total",
			"Records removed from the edge log before they were forwarded (drop-oldest disk policy)."),
		gaps: perStream("tributary_bridge_core_gap_records_total",
			"Records the core refused while accepting later pipelined batches (they cannot be forwarded any more)."),
		tooLarge: perStream("tributary_bridge_too_large_records_total",
			"Records skipped because the core refuses a batch holding only them as too large."),
		rewound: perStream("tributary_bridge_rewound_records_total",
			"Acknowledged records sent again because the core's copy ended before the cursor (the core lost them)."),
		corrupt: perStream("tributary_bridge_corrupt_records_total",
			"Records skipped as lost because their batch is damaged on the edge's disk (CRC mismatch)."),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.records, m.bytes, m.retries, m.skipped, m.gaps, m.tooLarge, m.rewound, m.corrupt, statusCollector{b}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// perStream is a counter labelled by stream, and by more labels if given.
func perStream(name, help string, more ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append([]string{"stream"}, more...))
}

var (
	descBacklogRecords = perPartition("tributary_bridge_backlog_records",
		"Records in the edge log not yet acknowledged by the core.")
	descBacklogBytes = perPartition("tributary_bridge_backlog_bytes",
		"Estimated edge-log bytes not yet acknowledged by the core.")
	descAckAge = perPartition("tributary_bridge_last_ack_age_seconds",
		"Seconds since the core last acknowledged a batch of this partition while records were waiting (0 when caught up).")
	descOldestAge = perPartition("tributary_bridge_oldest_unforwarded_age_seconds",
		"Age of the oldest record not yet acknowledged by the core, by its record timestamp (0 when caught up).")
	descCursor = perPartition("tributary_bridge_cursor_offset",
		"Next edge offset to forward (everything below is on the core).")
)

// perPartition describes a gauge labelled by stream and partition.
func perPartition(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"stream", "partition"}, nil)
}

type statusCollector struct{ b *Bridge }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBacklogRecords
	ch <- descBacklogBytes
	ch <- descAckAge
	ch <- descOldestAge
	ch <- descCursor
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.b.Status().Partitions {
		lv := []string{p.Stream, strconv.Itoa(int(p.Partition))}
		ch <- prometheus.MustNewConstMetric(descBacklogRecords, prometheus.GaugeValue, float64(p.BacklogRecords), lv...)
		ch <- prometheus.MustNewConstMetric(descBacklogBytes, prometheus.GaugeValue, float64(p.BacklogBytes), lv...)
		ch <- prometheus.MustNewConstMetric(descAckAge, prometheus.GaugeValue, p.LastAckAge.Seconds(), lv...)
		ch <- prometheus.MustNewConstMetric(descOldestAge, prometheus.GaugeValue, p.OldestUnforwardedAge.Seconds(), lv...)
		ch <- prometheus.MustNewConstMetric(descCursor, prometheus.GaugeValue, float64(p.Cursor), lv...)
	}
}
