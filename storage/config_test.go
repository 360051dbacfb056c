package storage

import (
	"context"
	"math"
	"testing"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

// TestSegmentBytesBounded: index entries hold file positions in 32 bits,
// so a segment size past Kafka's bound (2 GiB - 1) is refused.
func TestSegmentBytesBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		bytes int64
		ok    bool
	}{{1024, true}, {MaxSegmentBytes, true}, {MaxSegmentBytes + 1, false}, {8 << 30, false}, {1023, false}} {
		if err := (LogConfig{SegmentBytes: tc.bytes}).Validate(); (err == nil) != tc.ok {
			t.Errorf("segment bytes %d: %v, want ok=%v", tc.bytes, err, tc.ok)
		}
	}
}

// TestFarOffsetStartsSegment: a batch whose offset is more than 2^32 past
// its segment's base (a compacted leader's gap, copied by a replica) starts
// a new segment, as index entries hold relative offsets in 32 bits; it used
// to be indexed at a wrapped offset.
func TestFarOffsetStartsSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := LogConfig{Cleanup: CleanupCompact}
	l := openTestLog(t, dir, cfg)
	ctx := context.Background()
	far := int64(math.MaxUint32) + 10
	for _, base := range []int64{0, far} {
		b, err := recordbatch.Build([]recordbatch.Record{{Offset: base, Timestamp: 1, Key: []byte("k"), Value: []byte("v")}}, recordbatch.BuildOptions{BaseOffset: base, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LeaderEpoch: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, b, AppendOptions{KeepOffsets: true, LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	if bases, err := listSegments(dir); err != nil || len(bases) != 2 || bases[1] != far {
		t.Fatalf("segments %v (%v), want a second one at %d", bases, err, far)
	}
	b, err := l.Read(far, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := recordbatch.ParseHeader(b); err != nil || h.BaseOffset != far {
		t.Fatalf("read at %d: batch %+v, %v", far, h, err)
	}
}
