package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// DeleteRecordsBefore moves the start inside a segment, drops the whole
// segments below it, refuses offsets past the end, and the start survives a
// restart.
func TestDeleteRecordsBefore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTestLog(t, dir, LogConfig{SegmentBytes: 1024})
	for i := 0; i < 20; i++ {
		if _, err := l.Append(context.Background(), makeBatch(t, 5, "d", 1000), AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.segments) < 3 {
		t.Fatalf("want several segments, got %d", len(l.segments))
	}
	if _, err := l.DeleteRecordsBefore(101); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("past the end: %v", err)
	}
	start, err := l.DeleteRecordsBefore(52)
	if err != nil || start != 52 || l.StartOffset() != 52 {
		t.Fatalf("start %d (%d), err %v", start, l.StartOffset(), err)
	}
	if l.segments[0].base > 52 || l.segments[0].next <= 52 {
		t.Fatalf("first segment [%d,%d) should hold 52", l.segments[0].base, l.segments[0].next)
	}
	if _, err := l.Read(51, 1<<20, -1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	if b, err := l.Read(52, 1<<20, -1); err != nil || len(b) == 0 {
		t.Fatalf("read at start: %d bytes, %v", len(b), err)
	}
	if start, _ := l.DeleteRecordsBefore(10); start != 52 {
		t.Fatalf("moving back: start %d", start)
	}
	// Retention of the straddling segment must not move the start back.
	if _, err := l.DropOldestSegment(); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() < 52 {
		t.Fatalf("start moved back to %d", l.StartOffset())
	}
	want := l.StartOffset()
	l.Close()
	l = openTestLog(t, dir, LogConfig{SegmentBytes: 1024})
	defer l.Close()
	if l.StartOffset() != want {
		t.Fatalf("after restart start %d, want %d", l.StartOffset(), want)
	}
	// Everything: start = end, reads at the end are empty.
	if start, err := l.DeleteRecordsBefore(100); err != nil || start != 100 {
		t.Fatalf("delete all: %d %v", start, err)
	}
	if b, err := l.Read(100, 1<<20, -1); err != nil || len(b) != 0 {
		t.Fatalf("read at end: %d %v", len(b), err)
	}
}

// Topics.Reconfigure changes every partition's config at once and persists.
func TestTopicsReconfigure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := openTestStore(t, dir)
	tp := openTestTopics(t, dir, store)
	if err := tp.Create("t", 2, LogConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := tp.Reconfigure("t", LogConfig{MaxBatchBytes: 100, RetentionAge: time.Hour, Durability: Durability{Mode: SyncInterval, Interval: time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	if err := tp.Reconfigure("nope", LogConfig{}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	if err := tp.Reconfigure("t", LogConfig{SegmentBytes: 5}); err == nil {
		t.Fatal("invalid config accepted")
	}
	for p := int32(0); p < 2; p++ {
		l, _ := tp.Partition("t", p)
		if _, err := l.Append(context.Background(), makeBatch(t, 20, "big", 1000), AppendOptions{}); !errors.Is(err, ErrBatchTooLarge) {
			t.Fatalf("partition %d: batch over the new max: %v", p, err)
		}
		if l.Config().RetentionAge != time.Hour {
			t.Fatalf("partition %d: retention %v", p, l.Config().RetentionAge)
		}
		// The syncer follows the new 1 ms interval.
		if _, err := l.Append(context.Background(), makeBatch(t, 1, "s", 1000), AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := l.WaitSynced(ctx, l.NextOffset())
		cancel()
		if err != nil {
			t.Fatalf("synced after interval change: %v", err)
		}
	}
	tp.Close()
	tp = openTestTopics(t, dir, store)
	defer tp.Close()
	if info, _ := tp.Get("t"); info.Config.MaxBatchBytes != 100 || info.Config.SegmentBytes != 1<<20 {
		t.Fatalf("after restart: %+v", info.Config)
	}
}

// Reconfigure while appends, reads and retention run (go test -race).
func TestReconfigureUnderLoad(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{SegmentBytes: 4096})
	defer l.Close()
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(done)
		for i := 0; i < 300; i++ {
			if _, err := l.Append(context.Background(), makeBatch(t, 3, "r", time.Now().UnixMilli()), AppendOptions{}); err != nil {
				errc <- err
				return
			}
			if _, err := l.ApplyRetention(); err != nil {
				errc <- err
				return
			}
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
			select {
			case err := <-errc:
				t.Fatal(err)
			default:
			}
			return
		default:
		}
		c := LogConfig{SegmentBytes: int64(2048 + i%4*1024), RetentionBytes: 1 << 20, Compression: []string{"producer", "lz4", "uncompressed"}[i%3]}
		if i%2 == 0 {
			c.Durability = Durability{Mode: SyncInterval, Interval: time.Duration(1+i%5) * time.Millisecond}
		}
		if err := l.Reconfigure(c); err != nil {
			t.Fatal(err)
		}
		_ = l.Config()
	}
}
