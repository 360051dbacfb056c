package server

import (
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Per-partition gauges and consumer-group lag are computed from
// Server.Partitions and the committed offsets at scrape time, so they never
// drift from what /healthz and the console report. Only partitions whose
// log this broker hosts are reported (a follower's offsets are its copy's),
// so a Prometheus query over all brokers sees each replica once.
var (
	descPartEnd = prometheus.NewDesc("tributary_core_partition_log_end_offset",
		"Next offset to be written to this broker's copy of the partition.", []string{"topic", "partition"}, nil)
	descPartStart = prometheus.NewDesc("tributary_core_partition_log_start_offset",
		"First offset still held (retention moves it).", []string{"topic", "partition"}, nil)
	descPartHW = prometheus.NewDesc("tributary_core_partition_high_watermark",
		"Offset below which consumers may read.", []string{"topic", "partition"}, nil)
	descPartBytes = prometheus.NewDesc("tributary_core_partition_size_bytes",
		"Bytes of this broker's copy of the partition on disk.", []string{"topic", "partition"}, nil)
	descPartLeader = prometheus.NewDesc("tributary_core_partition_leader",
		"1 when this broker leads the partition, 0 when it follows.", []string{"topic", "partition"}, nil)
	descGroupLag = prometheus.NewDesc("tributary_core_group_lag",
		"Records between a consumer group's committed offset and the partition's high watermark, reported by the group's coordinator where it hosts the partition.",
		[]string{"group", "topic", "partition"}, nil)
	descGroupOffset = prometheus.NewDesc("tributary_core_group_committed_offset",
		"A consumer group's committed offset, reported by the group's coordinator.", []string{"group", "topic", "partition"}, nil)
)

type partitionCollector struct{ s *Server }

func (c partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPartEnd, descPartStart, descPartHW, descPartBytes, descPartLeader, descGroupLag, descGroupOffset} {
		ch <- d
	}
}

func (c partitionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.s.Partitions() {
		if !v.hosted {
			continue
		}
		lv := []string{v.Topic, strconv.Itoa(int(v.Partition))}
		leading := 0.0
		if v.Leading {
			leading = 1
		}
		ch <- prometheus.MustNewConstMetric(descPartEnd, prometheus.GaugeValue, float64(v.EndOffset), lv...)
		ch <- prometheus.MustNewConstMetric(descPartStart, prometheus.GaugeValue, float64(v.StartOffset), lv...)
		ch <- prometheus.MustNewConstMetric(descPartHW, prometheus.GaugeValue, float64(v.HighWatermark), lv...)
		ch <- prometheus.MustNewConstMetric(descPartBytes, prometheus.GaugeValue, float64(v.Bytes), lv...)
		ch <- prometheus.MustNewConstMetric(descPartLeader, prometheus.GaugeValue, leading, lv...)
	}
	for _, l := range c.s.GroupLags() {
		lv := []string{l.Group, l.Topic, strconv.Itoa(int(l.Partition))}
		ch <- prometheus.MustNewConstMetric(descGroupOffset, prometheus.GaugeValue, float64(l.Committed), lv...)
		if l.Lag >= 0 {
			ch <- prometheus.MustNewConstMetric(descGroupLag, prometheus.GaugeValue, float64(l.Lag), lv...)
		}
	}
}

// GroupLag is one committed offset of a consumer group and how far behind
// the partition's high watermark it is (-1: the partition is not hosted
// here, so the lag is not known on this broker).
type GroupLag struct {
	Group         string `json:"group"`
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Committed     int64  `json:"committed"`
	HighWatermark int64  `json:"high_watermark"`
	Lag           int64  `json:"lag"`
}

// GroupLags reports the committed offsets of the groups this broker
// coordinates (those whose offsets partition it leads), sorted by group, topic and partition.
func (s *Server) GroupLags() []GroupLag {
	names, err := s.store.Groups()
	if err != nil {
		return nil
	}
	hw := map[topicPartition]int64{}
	for _, v := range s.Partitions() {
		if v.hosted {
			hw[topicPartition{v.Topic, v.Partition}] = v.HighWatermark
		}
	}
	var out []GroupLag
	for _, g := range names {
		if !s.coordinates(g) {
			continue
		}
		offs, err := s.store.FetchOffsets(g)
		if err != nil {
			continue
		}
		start := len(out)
		for tp, oc := range offs {
			l := GroupLag{Group: g, Topic: tp.Topic, Partition: tp.Partition, Committed: oc.Offset, HighWatermark: -1, Lag: -1}
			if h, ok := hw[topicPartition{tp.Topic, tp.Partition}]; ok {
				l.HighWatermark = h
				l.Lag = max(0, h-oc.Offset)
			}
			out = append(out, l)
		}
		sortLags(out[start:])
	}
	return out
}

func sortLags(ls []GroupLag) {
	sort.Slice(ls, func(i, j int) bool {
		if ls[i].Topic != ls[j].Topic {
			return ls[i].Topic < ls[j].Topic
		}
		return ls[i].Partition < ls[j].Partition
	})
}

// coordinates reports whether this broker answers for group: it leads the
// group's offsets partition and has loaded it (other brokers' stores may
// hold stale copies).
func (s *Server) coordinates(group string) bool {
	p, ok := s.offsetsPartitionOf(group)
	return ok && s.ownsOffsetsPartition(p)
}
