package storage

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SyncStats counts the data fsyncs of a set of logs (the ones durable
// appends wait on) and sorts their durations into fixed buckets, without
// locks. Its Collector exports them as a Prometheus histogram: a slow or
// failing disk, such as a worn SD card in a gateway, shows there first.
type SyncStats struct {
	count, nanos atomic.Uint64
	// buckets[i] counts the fsyncs that took at most syncBuckets[i] and
	// longer than syncBuckets[i-1].
	buckets [len(syncBuckets)]atomic.Uint64
}

var syncBuckets = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond,
}

// observe records one fsync; a nil SyncStats records nothing. The count
// moves before the bucket, so a Snapshot (buckets first) never sees more
// in the buckets than in the count.
func (s *SyncStats) observe(d time.Duration) {
	if s == nil {
		return
	}
	s.count.Add(1)
	s.nanos.Add(uint64(max(d, 0)))
	if i := sort.Search(len(syncBuckets), func(i int) bool { return d <= syncBuckets[i] }); i < len(syncBuckets) {
		s.buckets[i].Add(1)
	}
}

// Snapshot returns how many fsyncs there were, their total time in
// seconds, and the cumulative count at each bucket's upper bound (seconds),
// as a Prometheus histogram wants them.
func (s *SyncStats) Snapshot() (count uint64, seconds float64, upTo map[float64]uint64) {
	upTo = make(map[float64]uint64, len(syncBuckets))
	var cum uint64
	for i := range s.buckets {
		cum += s.buckets[i].Load()
		upTo[syncBuckets[i].Seconds()] = cum
	}
	count = max(s.count.Load(), cum)
	return count, time.Duration(s.nanos.Load()).Seconds(), upTo
}

var syncDesc = prometheus.NewDesc("tributary_storage_fsync_seconds",
	"Time of each partition log data fsync (what a durable append waits for; metadata stores not included).", nil, nil)

// Collector exports s as the histogram tributary_storage_fsync_seconds.
func (s *SyncStats) Collector() prometheus.Collector { return syncCollector{s} }

type syncCollector struct{ s *SyncStats }

func (c syncCollector) Describe(ch chan<- *prometheus.Desc) { ch <- syncDesc }

func (c syncCollector) Collect(ch chan<- prometheus.Metric) {
	n, sum, upTo := c.s.Snapshot()
	ch <- prometheus.MustNewConstHistogram(syncDesc, n, sum, upTo)
}
