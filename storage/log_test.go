package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// makeBatch builds a batch of n records whose values name their position.
func makeBatch(t testing.TB, n int, tag string, ts int64) []byte {
	t.Helper()
	recs := make([]recordbatch.Record, n)
	for i := range recs {
		recs[i] = recordbatch.Record{
			Key:       []byte(fmt.Sprintf("k%d", i%7)),
			Value:     []byte(fmt.Sprintf("%s-%d", tag, i)),
			Timestamp: ts + int64(i),
			Headers:   []recordbatch.RecordHeader{{Key: "h", Value: []byte(tag)}},
		}
	}
	return buildBatch(t, recs, recordbatch.NoProducer)
}

// buildBatch is recordbatch.Build, failing the test on an error.
func buildBatch(t testing.TB, recs []recordbatch.Record, opts recordbatch.BuildOptions) []byte {
	t.Helper()
	b, err := recordbatch.Build(recs, opts)
	if err != nil {
		t.Fatalf("build batch: %v", err)
	}
	return b
}

// producerOpts builds a batch of producer pid at epoch, its first record
// numbered seq.
func producerOpts(pid int64, epoch int16, seq int32) recordbatch.BuildOptions {
	return recordbatch.BuildOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, LeaderEpoch: -1}
}

func openTestLog(t testing.TB, dir string, cfg LogConfig) *Log {
	t.Helper()
	l, err := OpenLog(dir, cfg, testkit.Logger(t))
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	return l
}

// segmentedLog opens a log of 2 KiB segments in dir and appends n batches
// of two records tagged tag: a few dozen batches make several segments.
func segmentedLog(t testing.TB, dir string, n int, tag string) *Log {
	t.Helper()
	l := openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), makeBatch(t, 2, tag, 1), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	return l
}

// TestAppendKeepsNoReference: once Append returns, the caller may reuse
// its buffer (the edge's partition writers build every batch in one): what
// was appended reads back unchanged after the buffer is overwritten, with
// the log compressing batches and without.
func TestAppendKeepsNoReference(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"", "lz4"} {
		t.Run("compression="+codec, func(t *testing.T) {
			l := openTestLog(t, t.TempDir(), LogConfig{Compression: codec})
			defer l.Close()
			buf := makeBatch(t, 3, "first", 1_700_000_000_000)
			if _, err := l.Append(context.Background(), buf, AppendOptions{LeaderEpoch: -1, Durable: true}); err != nil {
				t.Fatal(err)
			}
			second := makeBatch(t, 3, "other", 1_700_000_000_000)
			copy(buf, second) // same length: the same tag length
			if _, err := l.Append(context.Background(), buf, AppendOptions{LeaderEpoch: -1, Durable: true}); err != nil {
				t.Fatal(err)
			}
			clear(buf)
			data, err := l.Read(0, 1<<20, -1)
			if err != nil {
				t.Fatal(err)
			}
			var vals []string
			err = recordbatch.Split(data, func(_ recordbatch.Header, b []byte) error {
				recs, err := recordbatch.Records(b)
				for _, r := range recs {
					vals = append(vals, string(r.Value))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			want := "[first-0 first-1 first-2 other-0 other-1 other-2]"
			if fmt.Sprint(vals) != want {
				t.Fatalf("read back %v, want %s", vals, want)
			}
		})
	}
}

// readAll reads the whole log batch by batch, checking every batch's CRC
// and that offsets never go backwards.
func readAll(t testing.TB, l *Log) []recordbatch.Header {
	t.Helper()
	var out []recordbatch.Header
	off := l.StartOffset()
	for off < l.NextOffset() {
		data, err := l.Read(off, 64<<10, -1)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(data) == 0 {
			t.Fatalf("read at %d returned nothing before log end %d", off, l.NextOffset())
		}
		err = recordbatch.Split(data, func(h recordbatch.Header, _ []byte) error {
			if len(out) > 0 && h.BaseOffset < out[len(out)-1].NextOffset() {
				return fmt.Errorf("batch %d goes backwards after %d", h.BaseOffset, out[len(out)-1].LastOffset())
			}
			out = append(out, h)
			off = h.NextOffset()
			return nil
		})
		if err != nil {
			t.Fatalf("served bytes at %d are bad: %v", off, err)
		}
	}
	return out
}

func TestAppendReadAcrossRolls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := LogConfig{SegmentBytes: 4096, IndexIntervalBytes: 512}
	l := openTestLog(t, dir, cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	var want []AppendResult
	next := int64(0)
	for i := 0; i < 400; i++ {
		n := 1 + rng.IntN(5)
		res, err := l.Append(context.Background(), makeBatch(t, n, fmt.Sprintf("b%d", i), 1000+int64(i)*10), AppendOptions{LeaderEpoch: -1})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if res.BaseOffset != next || res.LastOffset != next+int64(n)-1 {
			t.Fatalf("append %d: got [%d,%d], want base %d with %d records", i, res.BaseOffset, res.LastOffset, next, n)
		}
		next = res.LastOffset + 1
		want = append(want, res)
	}
	if len(l.segments) < 5 {
		t.Fatalf("expected several segments with 4 KiB segments, got %d", len(l.segments))
	}
	check := func(l *Log) {
		t.Helper()
		got := readAll(t, l)
		if len(got) != len(want) {
			t.Fatalf("read %d batches, appended %d", len(got), len(want))
		}
		for i := range got {
			if got[i].BaseOffset != want[i].BaseOffset || got[i].LastOffset() != want[i].LastOffset {
				t.Fatalf("batch %d: got [%d,%d], want [%d,%d]", i, got[i].BaseOffset, got[i].LastOffset(), want[i].BaseOffset, want[i].LastOffset)
			}
		}
		// A read starting inside a batch returns that whole batch.
		for _, w := range want[10:20] {
			if w.LastOffset == w.BaseOffset {
				continue
			}
			data, err := l.Read(w.LastOffset, 1, -1)
			if err != nil {
				t.Fatal(err)
			}
			h, err := recordbatch.Validate(data)
			if err != nil || h.BaseOffset != w.BaseOffset || len(data) != h.Size() {
				t.Fatalf("read from mid-batch offset %d: base %d, %d bytes, err %v", w.LastOffset, h.BaseOffset, len(data), err)
			}
			recs, err := recordbatch.Records(data)
			if err != nil || recs[0].Offset != w.BaseOffset {
				t.Fatalf("records of batch at %d: %v", w.BaseOffset, err)
			}
		}
		if _, err := l.Read(next+1, 100, -1); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read past end: %v, want ErrOffsetOutOfRange", err)
		}
		if data, err := l.Read(next, 100, -1); err != nil || len(data) != 0 {
			t.Fatalf("read at end: %d bytes, %v", len(data), err)
		}
		// upTo stops before batches reaching it.
		data, err := l.Read(0, 1<<20, want[3].BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		recordbatch.Split(data, func(h recordbatch.Header, _ []byte) error { n++; return nil })
		if n != 3 {
			t.Fatalf("read up to batch 3 returned %d batches", n)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	if l.NextOffset() != next {
		t.Fatalf("reopened next offset %d, want %d", l.NextOffset(), next)
	}
	check(l)
	// Appends continue densely after reopen.
	res, err := l.Append(context.Background(), makeBatch(t, 2, "after", 5), AppendOptions{LeaderEpoch: -1})
	if err != nil || res.BaseOffset != next {
		t.Fatalf("append after reopen: %+v %v", res, err)
	}
}

func TestAppendRejectsBadBatches(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{MaxBatchBytes: 2048})
	defer l.Close()
	b := makeBatch(t, 3, "x", 1)
	bad := bytes.Clone(b)
	bad[len(bad)-1] ^= 0xff
	if _, err := l.Append(context.Background(), bad, AppendOptions{LeaderEpoch: -1}); !errors.Is(err, ErrInvalidBatch) || !errors.Is(err, recordbatch.ErrCorrupt) {
		t.Fatalf("corrupt batch: %v", err)
	}
	if _, err := l.Append(context.Background(), b[:len(b)-3], AppendOptions{LeaderEpoch: -1}); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("short batch: %v", err)
	}
	big := makeBatch(t, 200, "a-rather-long-tag-to-make-the-batch-big", 1)
	if _, err := l.Append(context.Background(), big, AppendOptions{LeaderEpoch: -1}); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("big batch: %v", err)
	}
	// A good batch followed by a bad one writes neither.
	if _, err := l.Append(context.Background(), append(bytes.Clone(b), bad...), AppendOptions{LeaderEpoch: -1}); err == nil {
		t.Fatal("mixed good+bad append succeeded")
	}
	if l.NextOffset() != 0 || l.Size() != 0 {
		t.Fatalf("rejected appends wrote data: next %d size %d", l.NextOffset(), l.Size())
	}
}

func idemBatch(t testing.TB, pid int64, epoch int16, seq int32, n int) []byte {
	recs := slices.Repeat([]recordbatch.Record{{Value: []byte("v"), Timestamp: 1}}, n)
	return buildBatch(t, recs, producerOpts(pid, epoch, seq))
}

func TestIdempotentProducer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
	ctx := context.Background()
	opts := AppendOptions{Idempotent: true, LeaderEpoch: -1}
	var firsts []AppendResult
	for i := 0; i < 30; i++ {
		res, err := l.Append(ctx, idemBatch(t, 7, 0, int32(i*3), 3), opts)
		if err != nil || res.Duplicate {
			t.Fatalf("batch %d: %+v %v", i, res, err)
		}
		firsts = append(firsts, res)
	}
	// A retry of one of the last five is a duplicate with the original offsets.
	res, err := l.Append(ctx, idemBatch(t, 7, 0, 27*3, 3), opts)
	if err != nil || !res.Duplicate || res.BaseOffset != firsts[27].BaseOffset {
		t.Fatalf("retry: %+v %v, want duplicate of %+v", res, err, firsts[27])
	}
	// A gap is out of order; an older epoch is fenced.
	if _, err := l.Append(ctx, idemBatch(t, 7, 0, 95, 1), opts); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", err)
	}
	next := l.NextOffset()
	l.Close()
	// State survives a restart (snapshot + replay), and a crash without the
	// clean-close snapshot (replay of the whole log).
	for _, crash := range []bool{false, true} {
		if crash {
			os.Remove(filepath.Join(dir, producerSnapshotFile))
		}
		l = openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
		res, err = l.Append(ctx, idemBatch(t, 7, 0, 29*3, 3), opts)
		if err != nil || !res.Duplicate || res.BaseOffset != firsts[29].BaseOffset {
			t.Fatalf("retry after reopen (crash=%v): %+v %v", crash, res, err)
		}
		if l.NextOffset() != next {
			t.Fatalf("duplicate appended after reopen")
		}
		l.Close()
	}
	l = openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
	defer l.Close()
	if _, err := l.Append(ctx, idemBatch(t, 7, 1, 0, 1), opts); err != nil {
		t.Fatalf("new epoch from 0: %v", err)
	}
	if _, err := l.Append(ctx, idemBatch(t, 7, 0, 90, 1), opts); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("old epoch: %v", err)
	}
}

// TestWaitSyncedLazily: a lazy waiter rides along with an fsync another
// writer leads, and leads one itself only once its patience runs out.
func TestWaitSyncedLazily(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openTestLog(t, t.TempDir(), LogConfig{Durability: Durability{Mode: SyncInterval, Interval: time.Hour}})
	defer l.Close()
	first, err := l.Append(ctx, makeBatch(t, 1, "d", 1), AppendOptions{LeaderEpoch: -1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.WaitSyncedLazily(ctx, first.LastOffset+1, time.Hour) }()
	select {
	case err := <-done:
		t.Fatalf("returned (%v) with nothing synced: synced offset %d", err, l.SyncedOffset())
	case <-time.After(50 * time.Millisecond):
	}
	// Another writer's durable append leads the fsync; the lazy waiter
	// returns with it.
	if _, err := l.Append(ctx, makeBatch(t, 1, "d", 1), AppendOptions{Durable: true, LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the lazy waiter missed the fsync another append led")
	}
	// Alone, it leads one after its patience.
	last, err := l.Append(ctx, makeBatch(t, 1, "d", 1), AppendOptions{LeaderEpoch: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitSyncedLazily(ctx, last.LastOffset+1, 10*time.Millisecond); err != nil || l.SyncedOffset() <= last.LastOffset {
		t.Fatalf("after its patience: %v, synced offset %d", err, l.SyncedOffset())
	}
}

func TestDurableAppendsShareFsync(t *testing.T) {
	t.Parallel()
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncBytes} {
		t.Run(string(mode), func(t *testing.T) {
			l := openTestLog(t, t.TempDir(), LogConfig{Durability: Durability{Mode: mode, Interval: time.Hour, Bytes: 1 << 30}})
			defer l.Close()
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for w := 0; w < 64; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 20; i++ {
						res, err := l.Append(context.Background(), makeBatch(t, 1, "d", 1), AppendOptions{Durable: true, LeaderEpoch: -1})
						if err != nil {
							errs <- err
							return
						}
						if l.SyncedOffset() <= res.LastOffset {
							errs <- fmt.Errorf("durable append of %d returned with synced offset %d", res.LastOffset, l.SyncedOffset())
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if l.NextOffset() != 64*20 {
				t.Fatalf("next offset %d", l.NextOffset())
			}
			// A non-durable append in interval mode with a long interval
			// does not wait for an fsync.
			if mode == SyncInterval {
				res, err := l.Append(context.Background(), makeBatch(t, 1, "n", 1), AppendOptions{LeaderEpoch: -1})
				if err != nil {
					t.Fatal(err)
				}
				if l.SyncedOffset() > res.LastOffset {
					t.Fatalf("non-durable append was synced before returning in interval mode (synced %d)", l.SyncedOffset())
				}
				if err := l.Sync(); err != nil || l.SyncedOffset() != l.NextOffset() {
					t.Fatalf("sync: %v, synced %d next %d", err, l.SyncedOffset(), l.NextOffset())
				}
			}
		})
	}
}

func TestOffsetForTime(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{SegmentBytes: 4096, IndexIntervalBytes: 256})
	defer l.Close()
	// Batch i holds records with timestamps 1000*i + 0..3.
	for i := 0; i < 100; i++ {
		if _, err := l.Append(context.Background(), makeBatch(t, 4, "t", int64(1000*i)), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ts   int64
		want int64
		ok   bool
	}{{0, 0, true}, {2, 2, true}, {1000, 4, true}, {1003, 7, true}, {1004, 8, true}, {50_001, 201, true}, {99_003, 399, true}, {99_004, 0, false}} {
		got, ok, err := l.OffsetForTime(c.ts)
		if err != nil || ok != c.ok || (ok && got != c.want) {
			t.Errorf("OffsetForTime(%d) = %d, %v, %v; want %d, %v", c.ts, got, ok, err, c.want, c.ok)
		}
	}
}

func TestTruncateTo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := LogConfig{SegmentBytes: 2048}
	l := openTestLog(t, dir, cfg)
	for i := 0; i < 100; i++ {
		if _, err := l.Append(context.Background(), makeBatch(t, 2, "x", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.TruncateTo(51); err != nil { // inside batch [50,51]: the whole batch goes
		t.Fatal(err)
	}
	if l.NextOffset() != 50 {
		t.Fatalf("next after truncate %d, want 50", l.NextOffset())
	}
	res, err := l.Append(context.Background(), makeBatch(t, 2, "y", 1), AppendOptions{LeaderEpoch: -1})
	if err != nil || res.BaseOffset != 50 {
		t.Fatalf("append after truncate: %+v %v", res, err)
	}
	l.Close()
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	hs := readAll(t, l)
	if len(hs) != 26 || l.NextOffset() != 52 {
		t.Fatalf("after reopen: %d batches, next %d", len(hs), l.NextOffset())
	}
}

func forwardedBatchEpoch(t testing.TB, pid int64, epoch int16, first int64, n int) []byte {
	recs := make([]recordbatch.Record, n)
	for i := range recs {
		recs[i] = recordbatch.Record{Value: []byte(fmt.Sprint(first + int64(i))), Timestamp: 1}
	}
	return buildBatch(t, recs, producerOpts(pid, epoch, int32(first)))
}

// A producer the caller marks SequenceFromSource (a bridge numbering records
// by edge offset) is deduplicated by high-water mark, whatever its id.
func TestSourceSequencedProducerDedup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTestLog(t, dir, LogConfig{})
	ctx := context.Background()
	const pid = 4242
	fromSource := func(id int64) SequenceMode {
		if id == pid {
			return SequenceFromSource
		}
		return SequencePerBatch
	}
	opts := AppendOptions{Idempotent: true, LeaderEpoch: -1, Sequences: fromSource}
	steps := []struct {
		epoch int16
		first int64
		n     int
		dup   bool
		err   error
	}{
		{0, 0, 10, false, nil}, // edge offsets 0..9
		{0, 5, 10, false, nil}, // re-batched after a crash: 5..9 are re-sends, 10..14 new
		{0, 0, 15, true, nil},  // everything already there
		{0, 12, 2, true, nil},
		{0, 20, 5, false, ErrOutOfOrderSequence}, // an undeclared gap: an earlier batch was refused
		{1, 20, 5, false, nil},                   // a gap under a new epoch (the edge dropped 15..19) is accepted
		{0, 25, 1, false, ErrInvalidProducerEpoch},
		{1, 15, 3, true, nil}, // below the high-water mark: dropped
	}
	for _, s := range steps {
		res, err := l.Append(ctx, forwardedBatchEpoch(t, pid, s.epoch, s.first, s.n), opts)
		if s.err != nil {
			if !errors.Is(err, s.err) {
				t.Fatalf("send %d+%d epoch %d: %v, want %v", s.first, s.n, s.epoch, err, s.err)
			}
			continue
		}
		if err != nil || res.Duplicate != s.dup {
			t.Fatalf("send %d+%d: %+v %v, want duplicate=%v", s.first, s.n, res, err, s.dup)
		}
	}
	check := func(l *Log) {
		var got []string
		for _, h := range readAll(t, l) {
			data, _ := l.Read(h.BaseOffset, 1, -1)
			recs, err := recordbatch.Records(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				got = append(got, string(r.Value))
			}
		}
		want := "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 20 21 22 23 24"
		if fmt.Sprint(got) != "["+want+"]" {
			t.Fatalf("stored edge offsets %v, want [%s]", got, want)
		}
	}
	check(l)
	// The same id in Kafka's per-batch mode: a re-batched send is a gap.
	other := openTestLog(t, t.TempDir(), LogConfig{})
	defer other.Close()
	perBatch := AppendOptions{Idempotent: true, LeaderEpoch: -1, Sequences: func(int64) SequenceMode { return SequencePerBatch }}
	if _, err := other.Append(ctx, forwardedBatchEpoch(t, pid, 0, 0, 10), perBatch); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Append(ctx, forwardedBatchEpoch(t, pid, 0, 5, 10), perBatch); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("re-batched send in per-batch mode: %v, want %v", err, ErrOutOfOrderSequence)
	}
	l.Close()
	// The high-water mark is rebuilt from the log after a crash.
	os.Remove(filepath.Join(dir, producerSnapshotFile))
	l = openTestLog(t, dir, LogConfig{})
	defer l.Close()
	if res, err := l.Append(ctx, forwardedBatchEpoch(t, pid, 1, 22, 3), opts); err != nil || !res.Duplicate {
		t.Fatalf("re-send after restart: %+v %v", res, err)
	}
	check(l)
}

func TestResetTo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := segmentedLog(t, dir, 50, "r")
	if err := l.ResetTo(1000); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != 1000 || l.NextOffset() != 1000 || l.Size() != 0 {
		t.Fatalf("after reset: start %d next %d size %d", l.StartOffset(), l.NextOffset(), l.Size())
	}
	// A replica batch at the new start is accepted with its offsets.
	b := makeBatch(t, 3, "rep", 1)
	recordbatch.SetBaseOffset(b, 1000)
	if res, err := l.Append(context.Background(), b, AppendOptions{KeepOffsets: true, LeaderEpoch: -1}); err != nil || res.BaseOffset != 1000 {
		t.Fatalf("replica append after reset: %+v %v", res, err)
	}
	l.Close()
	l = openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
	defer l.Close()
	if l.StartOffset() != 1000 || l.NextOffset() != 1003 {
		t.Fatalf("after reopen: start %d next %d", l.StartOffset(), l.NextOffset())
	}
}

func TestWaitSyncedAndChangedOnClose(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{Durability: Durability{Mode: SyncInterval, Interval: time.Hour}})
	res, err := l.Append(context.Background(), makeBatch(t, 2, "w", 1), AppendOptions{LeaderEpoch: -1})
	if err != nil {
		t.Fatal(err)
	}
	if l.SyncedOffset() > res.LastOffset {
		t.Fatal("synced before anyone asked")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.WaitSynced(ctx, res.LastOffset+1); err != nil || l.SyncedOffset() <= res.LastOffset {
		t.Fatalf("wait synced: %v, synced %d", err, l.SyncedOffset())
	}
	ch := l.Changed()
	l.Close()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed not closed when the log closed")
	}
}

func TestLeaderEpochs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
	ctx := context.Background()
	appendN := func(epoch int32, n int) {
		for i := 0; i < n; i++ {
			if _, err := l.Append(ctx, makeBatch(t, 2, "e", 1), AppendOptions{LeaderEpoch: epoch}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if e, off := l.EndOffsetForEpoch(5); e != -1 || off != -1 {
		t.Fatalf("empty log: %d %d", e, off)
	}
	appendN(0, 10) // offsets 0..19
	appendN(2, 10) // 20..39
	appendN(5, 10) // 40..59
	check := func(ask, wantEpoch int32, wantEnd int64) {
		t.Helper()
		if e, off := l.EndOffsetForEpoch(ask); e != wantEpoch || off != wantEnd {
			t.Fatalf("EndOffsetForEpoch(%d) = %d, %d; want %d, %d", ask, e, off, wantEpoch, wantEnd)
		}
	}
	check(0, 0, 20)
	check(1, 0, 20)
	if e, off := l.EndOffsetForEpoch(-1); e != -1 || off != -1 {
		t.Fatalf("EndOffsetForEpoch(-1) = %d, %d; want -1, -1", e, off)
	}
	check(2, 2, 40)
	check(4, 2, 40)
	check(5, 5, 60)
	check(9, 5, 60)
	if l.LatestEpoch() != 5 {
		t.Fatalf("latest epoch %d", l.LatestEpoch())
	}
	// A divergent follower truncates to the end of the epoch it shares.
	if err := l.TruncateTo(30); err != nil {
		t.Fatal(err)
	}
	check(5, 2, 30)
	l.Close()
	l = openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
	check(9, 2, 30)
	// Without the checkpoint it is rebuilt from the batches.
	l.Close()
	os.Remove(filepath.Join(dir, epochFile))
	l = openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
	defer l.Close()
	check(1, 0, 20)
	check(9, 2, 30)
	appendN(7, 1)
	check(6, 2, 30)
	check(7, 7, 32)
}

// TestEpochCheckpointWaitsForData: a new, empty log writes no leader-epoch
// checkpoint (creating a topic's partitions costs two fsyncs less each);
// its Close writes one, so a log that only holds batches without an epoch
// (the edge's) is not walked at every open, and the first batch with an
// epoch writes it too.
func TestEpochCheckpointWaitsForData(t *testing.T) {
	t.Parallel()
	exists := func(dir string) bool {
		_, err := os.Stat(filepath.Join(dir, epochFile))
		return err == nil
	}
	// No epoch: the checkpoint appears at Close.
	dir := t.TempDir()
	l := openTestLog(t, dir, LogConfig{})
	if exists(dir) {
		t.Fatal("an empty new log wrote a leader-epoch checkpoint")
	}
	if _, err := l.Append(context.Background(), makeBatch(t, 2, "e", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !exists(dir) {
		t.Fatal("Close left no leader-epoch checkpoint")
	}
	// An epoch: the checkpoint is written before its first batch.
	dir = t.TempDir()
	l = openTestLog(t, dir, LogConfig{})
	defer l.Close()
	if _, err := l.Append(context.Background(), makeBatch(t, 2, "e", 1), AppendOptions{LeaderEpoch: 3}); err != nil {
		t.Fatal(err)
	}
	if !exists(dir) {
		t.Fatal("a batch of epoch 3 was written without a checkpoint")
	}
	if l.LatestEpoch() != 3 {
		t.Fatalf("latest epoch %d, want 3", l.LatestEpoch())
	}
}

// openTestStore opens dir/meta.db until the test ends.
func openTestStore(t *testing.T, dir string) *meta.Store {
	t.Helper()
	store, err := meta.Open(dir + "/meta.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// openTestTopics opens the topics under dir/logs with 1 MiB segments.
func openTestTopics(t *testing.T, dir string, store *meta.Store) *Topics {
	t.Helper()
	tp, err := OpenTopics(dir+"/logs", store, LogConfig{SegmentBytes: 1 << 20}, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// TestReadInto: a read fills the buffer the caller's alloc hands it, asking
// for what that read needs (not maxBytes when the segment holds less), and
// returns the same bytes Read does; a first batch larger than maxBytes asks
// again for its whole size.
// Not parallel: it counts allocations.
func TestReadInto(t *testing.T) {
	l := openTestLog(t, t.TempDir(), LogConfig{SegmentBytes: 1 << 20})
	defer l.Close()
	for i := range 60 { // about 9 KiB
		if _, err := l.Append(context.Background(), makeBatch(t, 5, fmt.Sprintf("b%d", i), 1000), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := l.Read(0, 4096, -1)
	if err != nil || len(want) == 0 {
		t.Fatalf("read: %d bytes, %v", len(want), err)
	}

	pool := make([]byte, 64<<10)
	var asked []int
	alloc := func(n int) []byte {
		asked = append(asked, n)
		return pool[:0:n]
	}
	got, err := l.ReadInto(alloc, 0, 4096, -1)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadInto read %d bytes (%v), want the %d bytes Read returns", len(got), err, len(want))
	}
	if &got[0] != &pool[0] || len(asked) != 1 || asked[0] != 4096 {
		t.Fatalf("ReadInto asked for %v and read into its own array: %v", asked, &got[0] != &pool[0])
	}
	if allocs := testing.AllocsPerRun(20, func() {
		if _, err := l.ReadInto(alloc, 0, 4096, -1); err != nil {
			t.Fatal(err)
		}
	}); allocs > 2 {
		t.Errorf("ReadInto with the caller's buffer: %.0f allocations per read", allocs)
	}

	// Near the log end the read asks only for the bytes the segment holds.
	asked = nil
	last := l.NextOffset() - 1
	tail, err := l.ReadInto(alloc, last, 1<<20, -1)
	if err != nil || len(asked) != 1 || asked[0] != len(tail) || asked[0] >= 1<<20 {
		t.Fatalf("read of the last batch asked for %v bytes and read %d (%v)", asked, len(tail), err)
	}

	// maxBytes below one batch: asked again for that batch, whole.
	asked = nil
	first, err := l.ReadInto(alloc, 0, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := recordbatch.Validate(first); err != nil || len(first) != h.Size() || h.BaseOffset != 0 {
		t.Fatalf("one-byte read: %d bytes, %v", len(first), err)
	}
	if len(asked) != 2 || asked[1] != len(first) {
		t.Fatalf("one-byte read asked for %v, want a second request of %d", asked, len(first))
	}

	// At the log end: nothing asked, nothing read.
	asked = nil
	if end, err := l.ReadInto(alloc, l.NextOffset(), 4096, -1); err != nil || len(end) != 0 || len(asked) != 0 {
		t.Fatalf("read at the end: %d bytes, asked %v, %v", len(end), asked, err)
	}
}

// TestDeferSyncLeavesTheWaitToTheCaller: with DeferSync, an append to a
// log that syncs every write returns before its fsync, and WaitSynced then
// covers it.
func TestDeferSyncLeavesTheWaitToTheCaller(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{Durability: Durability{Mode: SyncAlways}})
	defer l.Close()
	res, err := l.Append(context.Background(), makeBatch(t, 3, "d", 1), AppendOptions{DeferSync: true, LeaderEpoch: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.SyncedOffset(); got > res.LastOffset {
		t.Fatalf("a deferred append returned with synced offset %d, past its last offset %d: it waited", got, res.LastOffset)
	}
	if err := l.WaitSynced(context.Background(), res.LastOffset+1); err != nil || l.SyncedOffset() <= res.LastOffset {
		t.Fatalf("WaitSynced after a deferred append: %v, synced offset %d", err, l.SyncedOffset())
	}
	res, err = l.Append(context.Background(), makeBatch(t, 3, "d", 1), AppendOptions{LeaderEpoch: -1})
	if err != nil || l.SyncedOffset() <= res.LastOffset {
		t.Fatalf("an append without DeferSync: %v, synced offset %d, last offset %d", err, l.SyncedOffset(), res.LastOffset)
	}
}

// TestEndOffsetForOlderEpoch: an epoch older than every one the log knows
// ended where the first known one starts (Kafka's answer), so a follower
// whose last epoch's records are gone from the leader fetches on.
func TestEndOffsetForOlderEpoch(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{})
	defer l.Close()
	for _, epoch := range []int32{-1, 3, 3, 4} {
		if _, err := l.Append(context.Background(), makeBatch(t, 5, "e", 1), AppendOptions{LeaderEpoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ask, epoch int32
		end        int64
	}{{0, 0, 5}, {2, 2, 5}, {3, 3, 15}, {4, 4, 20}, {-1, -1, -1}} {
		if e, off := l.EndOffsetForEpoch(c.ask); e != c.epoch || off != c.end {
			t.Errorf("EndOffsetForEpoch(%d) = %d, %d; want %d, %d", c.ask, e, off, c.epoch, c.end)
		}
	}
}
