package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSyncStatsBuckets: each duration lands in the first bucket whose bound
// holds it, the snapshot is cumulative, and one past the last bound counts
// only in the total.
func TestSyncStatsBuckets(t *testing.T) {
	t.Parallel()
	var s SyncStats
	for _, d := range []time.Duration{50 * time.Microsecond, 100 * time.Microsecond, 3 * time.Millisecond, 10 * time.Second} {
		s.observe(d)
	}
	var none *SyncStats
	none.observe(time.Millisecond) // a log outside a Topics counts nothing
	n, sum, upTo := s.Snapshot()
	want := map[float64]uint64{0.0001: 2, 0.00025: 2, 0.0005: 2, 0.001: 2, 0.0025: 2, 0.005: 3, 0.01: 3, 2.5: 3}
	for le, w := range want {
		if upTo[le] != w {
			t.Errorf("cumulative count at %gs: %d, want %d (%v)", le, upTo[le], w, upTo)
		}
	}
	if n != 4 || sum < 10.003 || sum > 10.0032 {
		t.Errorf("count %d, sum %gs; want 4 and 10.00315s", n, sum)
	}
}

// TestTopicsCountFsyncs: durable appends to a Topics' partitions are
// counted, whichever partition they go to, and the collector exports them
// as the histogram an operator scrapes.
func TestTopicsCountFsyncs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tp := openTestTopics(t, dir, openTestStore(t, dir))
	defer tp.Close()
	if err := tp.Create("readings", 2, LogConfig{}); err != nil {
		t.Fatal(err)
	}
	const appends = 6
	for i := range appends {
		l, err := tp.Partition("readings", int32(i%2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(context.Background(), makeBatch(t, 2, fmt.Sprintf("d%d", i), 1000), AppendOptions{LeaderEpoch: -1, Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(tp.SyncStats().Collector())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "tributary_storage_fsync_seconds" {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
	h := mfs[0].GetMetric()[0].GetHistogram()
	// Each append waited for an fsync of its own: nothing else was pending.
	if h.GetSampleCount() < appends || h.GetSampleSum() <= 0 {
		t.Fatalf("%d fsyncs taking %gs counted, want at least %d", h.GetSampleCount(), h.GetSampleSum(), appends)
	}
	var prev uint64
	for _, b := range h.GetBucket() {
		if c := b.GetCumulativeCount(); c < prev || c > h.GetSampleCount() {
			t.Fatalf("bucket %gs: %d after %d, of %d", b.GetUpperBound(), c, prev, h.GetSampleCount())
		}
		prev = b.GetCumulativeCount()
	}
}
