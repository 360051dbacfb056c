package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

func TestRetentionBySize(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{SegmentBytes: 2048, RetentionBytes: 8192})
	defer l.Close()
	for i := 0; i < 200; i++ {
		l.Append(context.Background(), makeBatch(t, 1, "r", time.Now().UnixMilli()), AppendOptions{LeaderEpoch: -1})
	}
	before, next := l.Size(), l.NextOffset()
	dropped, err := l.ApplyRetention()
	if err != nil {
		t.Fatal(err)
	}
	if l.Size() > 8192 || l.Size() >= before {
		t.Fatalf("size %d after retention (was %d, bound 8192)", l.Size(), before)
	}
	if dropped != l.StartOffset() {
		t.Fatalf("dropped %d records but start offset moved to %d", dropped, l.StartOffset())
	}
	if _, err := l.Read(0, 100, -1); err == nil {
		t.Fatal("read below start offset succeeded")
	}
	if hs := readAll(t, l); hs[len(hs)-1].NextOffset() != next {
		t.Fatal("retention removed the newest data")
	}
}

func TestRetentionByAgeAndFloor(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{SegmentBytes: 2048, RetentionAge: time.Hour})
	defer l.Close()
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	for i := 0; i < 100; i++ {
		l.Append(context.Background(), makeBatch(t, 1, "old", old), AppendOptions{LeaderEpoch: -1})
	}
	oldEnd := l.NextOffset()
	for i := 0; i < 100; i++ {
		l.Append(context.Background(), makeBatch(t, 1, "new", time.Now().UnixMilli()), AppendOptions{LeaderEpoch: -1})
	}
	// The floor protects unforwarded data even when it is old.
	l.SetRetentionFloor(10)
	if n, _ := l.ApplyRetention(); n != 0 && l.StartOffset() > 10 {
		t.Fatalf("retention passed the floor: start %d", l.StartOffset())
	}
	l.SetRetentionFloor(1 << 62)
	// Old timestamps alone do not make data old: it was appended just now
	// (a device whose clock runs hours behind).
	if n, err := l.ApplyRetention(); err != nil || n != 0 || l.StartOffset() != 0 {
		t.Fatalf("age retention removed %d records appended a moment ago (start %d, %v)", n, l.StartOffset(), err)
	}
	// Written two hours ago as well: now they go.
	l.mu.Lock()
	for _, s := range l.segments {
		if s.next <= oldEnd {
			s.appended = time.Now().Add(-2 * time.Hour)
		}
	}
	l.mu.Unlock()
	n, err := l.ApplyRetention()
	if err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() == 0 || l.StartOffset() > oldEnd || n == 0 {
		t.Fatalf("age retention: start %d (old data ends at %d), dropped %d", l.StartOffset(), oldEnd, n)
	}
	// Newer segments stay.
	for _, h := range readAll(t, l) {
		if h.NextOffset() > oldEnd && h.MaxTimestamp < time.Now().Add(-time.Hour).UnixMilli() {
			t.Fatalf("old batch at %d survived past new data", h.BaseOffset)
		}
	}
}

func TestDropOldestSegment(t *testing.T) {
	t.Parallel()
	l := segmentedLog(t, t.TempDir(), 100, "d")
	defer l.Close()
	l.SetRetentionFloor(0)
	first := l.segments[1].base
	d, err := l.DropOldestSegment()
	if err != nil || d.Records != first || d.From != 0 || d.To != first || l.StartOffset() != first {
		t.Fatalf("drop oldest: %+v, start %d, want %d: %v", d, l.StartOffset(), first, err)
	}
	for len(l.segments) > 1 {
		l.DropOldestSegment()
	}
	if d, _ := l.DropOldestSegment(); d.Records != 0 {
		t.Fatal("dropped the active segment")
	}
}

func keyed(t testing.TB, key string, value []byte, ts int64) []byte {
	return buildBatch(t, []recordbatch.Record{{Key: []byte(key), Value: value, Timestamp: ts}}, recordbatch.NoProducer)
}

func TestCompaction(t *testing.T) {
	t.Parallel()
	for _, codec := range []int{recordbatch.CompressionNone, recordbatch.CompressionZstd} {
		t.Run(fmt.Sprint("codec", codec), func(t *testing.T) {
			dir := t.TempDir()
			cfg := LogConfig{SegmentBytes: 2048, Cleanup: CleanupCompact, TombstoneRetention: time.Hour}
			l := openTestLog(t, dir, cfg)
			ctx := context.Background()
			now := time.Now().UnixMilli()
			latest := map[string]int64{}
			// 10 keys rewritten 30 times, in multi-record batches.
			for round := 0; round < 30; round++ {
				var recs []recordbatch.Record
				for k := 0; k < 10; k++ {
					recs = append(recs, recordbatch.Record{Key: []byte(fmt.Sprint("key", k)), Value: []byte(fmt.Sprint("v", round)), Timestamp: now})
				}
				opts := recordbatch.NoProducer
				opts.Compression = codec
				res, err := l.Append(ctx, buildBatch(t, recs, opts), AppendOptions{LeaderEpoch: -1})
				if err != nil {
					t.Fatal(err)
				}
				for k := 0; k < 10; k++ {
					latest[fmt.Sprint("key", k)] = res.BaseOffset + int64(k)
				}
			}
			// An old tombstone for key0 and a fresh one for key1.
			r, _ := l.Append(ctx, keyed(t, "key0", nil, now-2*time.Hour.Milliseconds()), AppendOptions{LeaderEpoch: -1})
			delete(latest, "key0")
			r2, _ := l.Append(ctx, keyed(t, "key1", nil, now), AppendOptions{LeaderEpoch: -1})
			latest["key1"] = r2.BaseOffset
			_ = r
			// Force the tail into sealed segments.
			for i := 0; i < 40; i++ {
				l.Append(ctx, keyed(t, "filler", []byte("x"), now), AppendOptions{LeaderEpoch: -1})
			}
			fillerLast := l.NextOffset() - 1
			latest["filler"] = fillerLast
			next, sizeBefore := l.NextOffset(), l.Size()
			if err := l.Compact(); err != nil {
				t.Fatal(err)
			}
			if l.NextOffset() != next {
				t.Fatalf("compaction moved the log end from %d to %d", next, l.NextOffset())
			}
			if l.Size() >= sizeBefore {
				t.Fatalf("compaction did not shrink the log: %d >= %d", l.Size(), sizeBefore)
			}
			check := func(l *Log) {
				seen := map[string]int64{}
				var prev int64 = -1
				for _, h := range readAll(t, l) {
					data, _ := l.Read(h.BaseOffset, 1, -1)
					recs, err := recordbatch.Records(data[:h.Size()])
					if err != nil {
						t.Fatal(err)
					}
					for _, rec := range recs {
						if rec.Offset <= prev {
							t.Fatalf("offset %d after %d", rec.Offset, prev)
						}
						prev = rec.Offset
						k := string(rec.Key)
						if k == "key0" {
							t.Fatalf("old tombstone for key0 survived at %d", rec.Offset)
						}
						seen[k] = rec.Offset
					}
				}
				// The active segment is untouched, so filler duplicates may
				// remain there; every other key must be down to its newest.
				for k, off := range latest {
					if seen[k] != off {
						t.Fatalf("key %s: newest surviving offset %d, want %d", k, seen[k], off)
					}
				}
			}
			check(l)
			l.Close()
			l = openTestLog(t, dir, cfg)
			defer l.Close()
			check(l)
		})
	}
}

func TestTopicsCreateReopenDelete(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := openTestStore(t, dir)
	tp := openTestTopics(t, dir, store)
	for i := 0; i < 30; i++ {
		if err := tp.Create(fmt.Sprintf("topic-%02d", i), int32(1+i%4), LogConfig{RetentionBytes: int64(1000 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tp.Create("topic-00", 1, LogConfig{}); err == nil {
		t.Fatal("duplicate create succeeded")
	}
	for _, bad := range []string{"", "..", "a/b", "sp ace"} {
		if err := tp.Create(bad, 1, LogConfig{}); err == nil {
			t.Fatalf("invalid name %q accepted", bad)
		}
	}
	if err := tp.Create("zero", 0, LogConfig{}); err == nil {
		t.Fatal("0 partitions accepted")
	}
	// TotalSize follows appends, new partitions and deletes.
	sumLogs := func() int64 {
		var n int64
		for _, l := range tp.Logs() {
			n += l.Size()
		}
		return n
	}
	l, _ := tp.Partition("topic-03", 3)
	if _, err := l.Append(context.Background(), makeBatch(t, 5, "t", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	l29, _ := tp.Partition("topic-29", 0)
	if _, err := l29.Append(context.Background(), makeBatch(t, 3, "t", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	if got := tp.TotalSize(); got != sumLogs() || got != l.Size()+l29.Size() || got == 0 {
		t.Fatalf("TotalSize %d, logs hold %d (%d + %d)", got, sumLogs(), l.Size(), l29.Size())
	}
	if err := tp.AddPartitions("topic-00", 3); err != nil {
		t.Fatal(err)
	}
	l00, _ := tp.Partition("topic-00", 2)
	if _, err := l00.Append(context.Background(), makeBatch(t, 2, "t", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	if got, want := tp.TotalSize(), l.Size()+l29.Size()+l00.Size(); got != want {
		t.Fatalf("TotalSize %d after adding a partition, want %d", got, want)
	}
	if err := tp.Delete("topic-29"); err != nil {
		t.Fatal(err)
	}
	if got, want := tp.TotalSize(), l.Size()+l00.Size(); got != want {
		t.Fatalf("TotalSize %d after a delete, want %d", got, want)
	}
	before := tp.TotalSize()
	tp.Close()

	tp = openTestTopics(t, dir, store)
	defer tp.Close()
	if got := tp.TotalSize(); got != before {
		t.Fatalf("TotalSize %d after reopen, was %d", got, before)
	}
	list := tp.List()
	if len(list) != 29 {
		t.Fatalf("%d topics after reopen, want 29", len(list))
	}
	info, _ := tp.Get("topic-00")
	if info.Partitions != 3 || info.Config.RetentionBytes != 1000 || info.Config.SegmentBytes != 1<<20 {
		t.Fatalf("topic-00 after reopen: %+v", info)
	}
	if _, ok := tp.Get("topic-29"); ok {
		t.Fatal("deleted topic came back")
	}
	l, err := tp.Partition("topic-03", 3)
	if err != nil || l.NextOffset() != 5 {
		t.Fatalf("data of topic-03/3 after reopen: %v", err)
	}
	if _, err := tp.Partition("topic-03", 4); err == nil {
		t.Fatal("partition 4 of a 4-partition topic exists")
	}
	// Re-creating a deleted topic starts empty.
	if err := tp.Create("topic-29", 1, LogConfig{}); err != nil {
		t.Fatal(err)
	}
	l, _ = tp.Partition("topic-29", 0)
	if l.NextOffset() != 0 {
		t.Fatal("re-created topic has old data")
	}
}

// Kafka's message.timestamp.type=LogAppendTime stamps each batch with the
// append time (attribute bit and max timestamp, CRC still valid), and
// before/after.max bound CreateTime timestamps (KIP-937).
func TestTimestampTypeAndBounds(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{TimestampType: LogAppendTime})
	old := time.Now().Add(-48 * time.Hour).UnixMilli()
	before := time.Now().UnixMilli()
	if _, err := l.Append(context.Background(), makeBatch(t, 3, "k", old), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	hs := readAll(t, l)
	if len(hs) != 1 || hs[0].Attributes&recordbatch.TimestampTypeBit == 0 || hs[0].MaxTimestamp < before || hs[0].MaxTimestamp > time.Now().UnixMilli() {
		t.Fatalf("LogAppendTime batch: %+v", hs)
	}
	l.Close()

	l = openTestLog(t, t.TempDir(), LogConfig{TimestampBeforeMax: time.Hour, TimestampAfterMax: time.Minute})
	defer l.Close()
	for name, ts := range map[string]int64{
		"48 h behind":  old,
		"10 min ahead": time.Now().Add(10 * time.Minute).UnixMilli(),
	} {
		if _, err := l.Append(context.Background(), makeBatch(t, 1, "k", ts), AppendOptions{LeaderEpoch: -1}); !errors.Is(err, ErrInvalidTimestamp) {
			t.Errorf("%s: %v, want ErrInvalidTimestamp", name, err)
		}
	}
	if _, err := l.Append(context.Background(), makeBatch(t, 1, "k", time.Now().Add(-30*time.Minute).UnixMilli()), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Errorf("a timestamp 30 min behind, within the hour: %v", err)
	}
}
