package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// histogramOf reads h as Prometheus exports it.
func histogramOf(t *testing.T, h prometheus.Histogram) *dto.Histogram {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram()
}

// TestFsyncHistogramBuckets: each duration lands in the first bucket whose
// bound holds it, the counts are cumulative, and one past the last bound
// counts only in the total.
func TestFsyncHistogramBuckets(t *testing.T) {
	t.Parallel()
	h := newFsyncHistogram()
	for _, d := range []time.Duration{50 * time.Microsecond, 100 * time.Microsecond, 3 * time.Millisecond, 10 * time.Second} {
		h.Observe(d.Seconds())
	}
	got := histogramOf(t, h)
	upTo := map[float64]uint64{}
	for _, b := range got.GetBucket() {
		upTo[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	want := map[float64]uint64{0.0001: 2, 0.00025: 2, 0.0005: 2, 0.001: 2, 0.0025: 2, 0.005: 3, 0.01: 3, 2.5: 3}
	for le, w := range want {
		if upTo[le] != w {
			t.Errorf("cumulative count at %gs: %d, want %d (%v)", le, upTo[le], w, upTo)
		}
	}
	if n, sum := got.GetSampleCount(), got.GetSampleSum(); n != 4 || sum < 10.003 || sum > 10.0032 {
		t.Errorf("count %d, sum %gs; want 4 and 10.00315s", n, sum)
	}
}

// TestTopicsCountFsyncs: durable appends to a Topics' partitions are
// counted, whichever partition they go to, and the histogram is exported
// under the name an operator scrapes.
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
	reg.MustRegister(tp.FsyncSeconds())
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

	// A log opened on its own counts nothing anywhere.
	alone := openTestLog(t, t.TempDir(), LogConfig{})
	defer alone.Close()
	if _, err := alone.Append(context.Background(), makeBatch(t, 1, "alone", 1000), AppendOptions{LeaderEpoch: -1, Durable: true}); err != nil {
		t.Fatal(err)
	}
	if n := histogramOf(t, tp.FsyncSeconds()).GetSampleCount(); n != h.GetSampleCount() {
		t.Fatalf("a log outside the Topics changed its count: %d, was %d", n, h.GetSampleCount())
	}
}
