package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// crashCopy copies a log directory's files as a SIGKILL would leave them:
// what was written, without what Close would have added.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestProducerStateSurvivesDeleteRecordsAndKill: batches between the
// producer snapshot and a log start DeleteRecords moved are still on disk,
// and recovery must replay them; it used to replay from the log start, so
// a retry of the last acknowledged batch was refused as out of order (and a
// bridge re-sent what the log already held).
func TestProducerStateSurvivesDeleteRecordsAndKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	opts := AppendOptions{Idempotent: true, LeaderEpoch: -1}
	l := openTestLog(t, dir, LogConfig{})
	if _, err := l.Append(ctx, idemBatch(t, 7, 0, 0, 1), opts); err != nil {
		t.Fatal(err)
	}
	l.Close() // snapshot at offset 1
	l = openTestLog(t, dir, LogConfig{})
	defer l.Close()
	for seq := int32(1); seq <= 2; seq++ {
		if _, err := l.Append(ctx, idemBatch(t, 7, 0, seq, 1), AppendOptions{Idempotent: true, LeaderEpoch: -1, Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	crashed := openTestLog(t, crashCopy(t, dir), LogConfig{})
	defer crashed.Close()
	res, err := crashed.Append(ctx, idemBatch(t, 7, 0, 2, 1), opts)
	if err != nil || !res.Duplicate {
		t.Fatalf("retry of the last acked batch after kill: %+v, %v; want a duplicate", res, err)
	}
}

// TestTruncateKeepsProducersRetentionRemoved: a source-sequenced producer
// (a bridge) whose batches retention removed keeps its high-water mark
// through a truncation and a restart; TruncateTo used to rebuild producer
// state from the log alone, and the re-send was appended again.
func TestTruncateKeepsProducersRetentionRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	const pid = 4242
	opts := AppendOptions{Idempotent: true, LeaderEpoch: -1, Sequences: func(int64) SequenceMode { return SequenceFromSource }}
	l := openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
	defer l.Close()
	if _, err := l.Append(ctx, forwardedBatchEpoch(t, pid, 0, 0, 3), opts); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		if _, err := l.Append(ctx, makeBatch(t, 2, "x", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.DropOldestSegment(); err != nil {
		t.Fatal(err)
	}
	if res, err := l.Append(ctx, forwardedBatchEpoch(t, pid, 0, 0, 3), opts); err != nil || !res.Duplicate {
		t.Fatalf("before truncation: %+v %v", res, err)
	}
	if err := l.TruncateTo(l.NextOffset() - 2); err != nil {
		t.Fatal(err)
	}
	before := l.NextOffset()
	res, err := l.Append(ctx, forwardedBatchEpoch(t, pid, 0, 0, 3), opts)
	if err != nil || !res.Duplicate || l.NextOffset() != before {
		t.Fatalf("re-send after TruncateTo: %+v %v, log end %d -> %d; want a duplicate", res, err, before, l.NextOffset())
	}
	// The snapshot written at the cut keeps it across a kill too.
	crashed := openTestLog(t, crashCopy(t, dir), LogConfig{SegmentBytes: 2048})
	defer crashed.Close()
	if res, err := crashed.Append(ctx, forwardedBatchEpoch(t, pid, 0, 0, 3), opts); err != nil || !res.Duplicate {
		t.Fatalf("re-send after TruncateTo and a kill: %+v %v; want a duplicate", res, err)
	}
}

// hookObserver runs fn where the log times an fsync: after the fdatasync,
// before the log takes its lock again.
type hookObserver struct{ fn func() }

func (o *hookObserver) Observe(float64) {
	if o.fn != nil {
		o.fn()
	}
}

// TestFsyncRacingTruncationPublishesNothing: an fsync that began before a
// truncation must not mark offsets synced that the log then reuses for new
// appends; it used to, and a durable append at those offsets returned
// without any fsync. A wait that the truncation overtook ends with
// ErrTruncated.
func TestFsyncRacingTruncationPublishesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	obs := &hookObserver{}
	l, err := openLog(dir, LogConfig{Durability: Durability{Mode: SyncInterval, Interval: time.Hour}}, testkit.Logger(t), obs)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := l.Append(ctx, makeBatch(t, 1, "a", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	once := true
	obs.fn = func() { // after fdatasync, before syncLocked retakes mu
		if once {
			once = false
			if err := l.TruncateTo(5); err != nil {
				t.Error(err)
			}
		}
	}
	if err := l.Sync(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("a sync of 10 offsets overtaken by a cut to 5: %v, want ErrTruncated", err)
	}
	if l.SyncedOffset() > l.NextOffset() {
		t.Fatalf("after the cut: synced %d, past the log end %d", l.SyncedOffset(), l.NextOffset())
	}
	fsyncs := 0
	obs.fn = func() { fsyncs++ }
	if _, err := l.Append(ctx, makeBatch(t, 1, "b", 1), AppendOptions{LeaderEpoch: -1, Durable: true}); err != nil {
		t.Fatal(err)
	}
	if fsyncs == 0 {
		t.Fatalf("durable append at offset 5 returned with no fsync (synced %d, next %d)", l.SyncedOffset(), l.NextOffset())
	}
}

// TestInterruptedResetOpensClean: a reset that dies part-way leaves a log
// that opens writable. It used to create the new segment before removing
// the old ones, and a crash between left overlapping segments, which
// recovery takes for damage (read-only until someone repairs it by hand).
// A reset now makes the new segment under a temporary name, removes the
// old ones oldest first, then renames it; each crash point is replayed
// here on disk.
func TestInterruptedResetOpensClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		removed int // old segments removed before the crash
	}{
		{"before any removal", 0},
		{"after the first removal", 1},
		{"after every removal", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := segmentedLog(t, dir, 50, "r")
			l.Close()
			bases, err := listSegments(dir)
			if err != nil || len(bases) < 3 {
				t.Fatalf("want at least 3 segments, have %v (%v)", bases, err)
			}
			n := tc.removed
			if n < 0 {
				n = len(bases)
			}
			for _, b := range bases[:n] {
				s := &segment{path: filepath.Join(dir, segmentName(b)+logSuffix)}
				if err := s.remove(); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, segmentName(1000)+logSuffix+".tmp"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			l = openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
			defer l.Close()
			if err := l.ReadOnlyReason(); err != nil {
				t.Fatalf("read-only after an interrupted reset: %v", err)
			}
			if _, err := l.Append(context.Background(), makeBatch(t, 1, "after", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
				t.Fatalf("append after an interrupted reset: %v", err)
			}
		})
	}
}

// TestResetToSameBaseClosesOldSegment: a reset to the base of a segment
// the log holds used to skip that segment when removing the old ones and
// leak its descriptor.
func TestResetToSameBaseClosesOldSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTestLog(t, dir, LogConfig{})
	if _, err := l.Append(context.Background(), makeBatch(t, 2, "x", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	if err := l.ResetTo(0); err != nil {
		t.Fatal(err)
	}
	l.Close()
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(target, dir) {
			t.Fatalf("descriptor %s still open on %s after Close", e.Name(), target)
		}
	}
}

// TestCompactedLogReopensUnderDelete: compaction leaves offset gaps, and a
// log whose policy then goes back to delete must still open; recovery used
// to judge gaps by the policy of the day and opened it read-only.
func TestCompactedLogReopensUnderDelete(t *testing.T) {
	t.Parallel()
	for _, opened := range []CleanupPolicy{CleanupCompact, CleanupDelete} {
		t.Run("opened "+string(opened), func(t *testing.T) { compactThenDelete(t, opened) })
	}
}

// compactThenDelete opens a log under policy opened, switches it to
// compact (AlterConfigs, no restart), compacts it, switches it back to
// delete and reopens it.
func compactThenDelete(t *testing.T, opened CleanupPolicy) {
	dir := t.TempDir()
	cfg := LogConfig{SegmentBytes: 2048, Cleanup: opened}
	l := openTestLog(t, dir, cfg)
	cfg.Cleanup = CleanupCompact
	if err := l.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UnixMilli()
	for i := 0; i < 80; i++ {
		if _, err := l.Append(ctx, keyed(t, "k", []byte("v"), now), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Compact(); err != nil {
		t.Fatal(err)
	}
	cfg.Cleanup = CleanupDelete
	if err := l.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	if err := l.ReadOnlyReason(); err != nil {
		t.Fatalf("after compact -> delete: %v", err)
	}
	if _, err := l.Append(ctx, keyed(t, "k", []byte("v"), now), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatalf("append after compact -> delete: %v", err)
	}
}

// TestFailedEpochCheckpointRetried: when the checkpoint of a new leader
// epoch cannot be written, the append fails and the epoch stays new, so
// the next append of it writes the checkpoint. It used to stay in memory,
// the next append skipped the write, and after a restart the log held
// records of an epoch its checkpoint did not know.
func TestFailedEpochCheckpointRetried(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	l := openTestLog(t, dir, LogConfig{})
	if _, err := l.Append(ctx, makeBatch(t, 1, "e0", 1), AppendOptions{LeaderEpoch: 0}); err != nil {
		t.Fatal(err)
	}
	block := filepath.Join(dir, epochFile+".tmp")
	if err := os.Mkdir(block, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, makeBatch(t, 1, "e1", 1), AppendOptions{LeaderEpoch: 1}); err == nil {
		t.Fatal("append succeeded with the checkpoint unwritable")
	}
	os.Remove(block)
	if _, err := l.Append(ctx, makeBatch(t, 1, "e1", 1), AppendOptions{LeaderEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openTestLog(t, dir, LogConfig{})
	defer l.Close()
	if got := l.LatestEpoch(); got != 1 {
		t.Fatalf("after restart LatestEpoch %d, want 1", got)
	}
}

// TestTruncateToInsideStartBatch: truncating at a log start that lies
// inside a batch removes that whole batch, and so everything from the
// start; the log must come out empty at its start, not end before it (every
// read then failed, and a restart served deleted records again).
func TestTruncateToInsideStartBatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTestLog(t, dir, LogConfig{})
	defer l.Close()
	for i := 0; i < 3; i++ {
		if _, err := l.Append(context.Background(), makeBatch(t, 5, "x", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.DeleteRecordsBefore(7); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(7); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != 7 || l.NextOffset() != 7 {
		t.Fatalf("after a cut at the start 7, inside batch 5-9: start %d, end %d; want both 7", l.StartOffset(), l.NextOffset())
	}
	if _, err := l.Append(context.Background(), makeBatch(t, 1, "after", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	if b, err := l.Read(7, 1<<20, -1); err != nil || len(b) == 0 {
		t.Fatalf("read at the start after the cut: %d bytes, %v", len(b), err)
	}
}

// TestOversizedStoredSegmentBytesOpens: a topic config saved before
// SegmentBytes was bounded (8 GiB was accepted) still opens, at the bound;
// only new configs are refused.
func TestOversizedStoredSegmentBytesOpens(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{SegmentBytes: 8 << 30})
	defer l.Close()
	if got := l.Config().SegmentBytes; got != MaxSegmentBytes {
		t.Fatalf("segment bytes %d, want the bound %d", got, int64(MaxSegmentBytes))
	}
}

// TestCutKeepsTheEpochOfWhatItKeeps: a bridge's producer, its earlier
// batches removed by retention, crosses a declared gap under a new epoch;
// a truncation then cuts that batch. The producer's kept state must not
// keep the epoch the cut batch raised, or the re-sent crossing is refused
// as out of order (the same epoch may not jump a gap) and the partition
// stalls.
func TestCutKeepsTheEpochOfWhatItKeeps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const pid = 4242
	opts := AppendOptions{Idempotent: true, LeaderEpoch: -1, Sequences: func(int64) SequenceMode { return SequenceFromSource }}
	l := openTestLog(t, t.TempDir(), LogConfig{SegmentBytes: 2048})
	defer l.Close()
	if _, err := l.Append(ctx, forwardedBatchEpoch(t, pid, 0, 0, 3), opts); err != nil {
		t.Fatal(err)
	}
	for range 60 {
		if _, err := l.Append(ctx, makeBatch(t, 2, "x", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.DropOldestSegment(); err != nil {
		t.Fatal(err)
	}
	crossing := l.NextOffset()
	if _, err := l.Append(ctx, forwardedBatchEpoch(t, pid, 1, 10, 3), opts); err != nil { // records 3–9 declared lost
		t.Fatal(err)
	}
	if err := l.TruncateTo(crossing); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, forwardedBatchEpoch(t, pid, 1, 10, 3), opts); err != nil {
		t.Fatalf("the crossing re-sent after the cut: %v", err)
	}
}

// TestWaitForCutOffsetsEnds: a wait for the fsync of offsets a truncation
// removed ends with ErrTruncated, whether the cut came during the wait or
// just before it began, instead of waiting for the log to grow back.
func TestWaitForCutOffsetsEnds(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{Durability: Durability{Mode: SyncInterval, Interval: time.Hour}})
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 10 {
		if _, err := l.Append(ctx, makeBatch(t, 1, "a", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.TruncateTo(5); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitSynced(ctx, 10); !errors.Is(err, ErrTruncated) {
		t.Fatalf("a wait for offsets cut before it began: %v, want ErrTruncated", err)
	}
}
