package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// fillLog writes n batches into a fresh log and returns the bytes of its
// single (active) segment and each batch's header.
func fillLog(t *testing.T, n int) ([]byte, []recordbatch.Header) {
	t.Helper()
	dir := t.TempDir()
	l := openTestLog(t, dir, LogConfig{})
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), makeBatch(t, 1+i%4, fmt.Sprintf("c%d", i), int64(i)), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	hs := readAll(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	seg, err := os.ReadFile(activeSegmentPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	return seg, hs
}

func activeSegmentPath(dir string) string {
	bases, _ := listSegments(dir)
	return filepath.Join(dir, segmentName(bases[len(bases)-1])+logSuffix)
}

// segmentDir is a fresh log directory whose only segment (base 0) holds
// data, for recovery to open.
func segmentDir(t testing.TB, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, segmentName(0)+logSuffix), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRecoveryTruncatedTail(t *testing.T) {
	t.Parallel()
	orig, hs := fillLog(t, 60)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 40; i++ {
		cut := rng.IntN(len(orig))
		l := openTestLog(t, segmentDir(t, orig[:cut]), LogConfig{})
		// The log must hold exactly the whole batches before the cut.
		var wantNext int64
		var end int
		for _, h := range hs {
			if end+h.Size() > cut {
				break
			}
			end += h.Size()
			wantNext = h.NextOffset()
		}
		if l.NextOffset() != wantNext {
			t.Fatalf("cut at %d: next offset %d, want %d", cut, l.NextOffset(), wantNext)
		}
		if err := l.ReadOnlyReason(); err != nil {
			t.Fatalf("cut at %d: a torn tail must not make the log read-only: %v", cut, err)
		}
		rep := l.Recovery()
		if cut != end && rep.TruncatedBytes != int64(cut-end) {
			t.Fatalf("cut at %d: report says %d bytes truncated, want %d", cut, rep.TruncatedBytes, cut-end)
		}
		readAll(t, l)
		// Appends continue right after the last whole batch.
		res, err := l.Append(context.Background(), makeBatch(t, 1, "after", 1), AppendOptions{LeaderEpoch: -1})
		if err != nil || res.BaseOffset != wantNext {
			t.Fatalf("cut at %d: append after recovery: %+v %v", cut, res, err)
		}
		l.Close()
	}
}

func TestRecoveryBitFlips(t *testing.T) {
	t.Parallel()
	orig, hs := fillLog(t, 60)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 60; i++ {
		data := bytes.Clone(orig)
		pos := rng.IntN(len(data))
		data[pos] ^= 1 << rng.IntN(8)
		l, err := OpenLog(segmentDir(t, data), LogConfig{}, testkit.Logger(t))
		if err != nil {
			t.Fatalf("flip at %d: open: %v", pos, err)
		}
		// Which batch holds the flipped byte?
		var at int
		var victim recordbatch.Header
		for _, h := range hs {
			if pos < at+h.Size() {
				victim = h
				break
			}
			at += h.Size()
		}
		// The base offset (bytes 0-7) and leader epoch (12-15) are outside
		// the CRC by Kafka's design: a flip there is caught only when it
		// breaks offset order. Every other byte must be caught.
		rel := pos - at
		detectable := rel >= 16 || (rel >= 8 && rel < 12)
		got := readAll(t, l) // fails the test if any served batch is bad
		for _, h := range got {
			if h.BaseOffset >= victim.BaseOffset {
				if detectable {
					t.Fatalf("flip at %d (batch %d): batch at %d still served", pos, victim.BaseOffset, h.BaseOffset)
				}
			}
		}
		rep := l.Recovery()
		if detectable && rep.Reason == nil {
			t.Fatalf("flip at %d: nothing reported", pos)
		}
		isLast := victim.BaseOffset == hs[len(hs)-1].BaseOffset
		if detectable && !isLast && l.ReadOnlyReason() == nil {
			t.Fatalf("flip at %d inside batch %d followed by good batches: want read-only, got truncation of %d bytes", pos, victim.BaseOffset, rep.TruncatedBytes)
		}
		if ro := l.ReadOnlyReason(); ro != nil {
			if !errors.Is(ro, ErrReadOnly) {
				t.Fatalf("read-only reason %v", ro)
			}
			if _, err := l.Append(context.Background(), makeBatch(t, 1, "x", 1), AppendOptions{LeaderEpoch: -1}); !errors.Is(err, ErrReadOnly) {
				t.Fatalf("append on read-only log: %v", err)
			}
		}
		l.Close()
	}
}

func TestCorruptSealedSegmentOpensReadOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := segmentedLog(t, dir, 100, "s")
	l.Close()
	bases, _ := listSegments(dir)
	if len(bases) < 3 {
		t.Fatalf("want several segments, got %d", len(bases))
	}
	// Damage the middle of the second segment and drop its index so that
	// recovery must scan it.
	seg := filepath.Join(dir, segmentName(bases[1])+logSuffix)
	data, _ := os.ReadFile(seg)
	data[len(data)/2] ^= 0x40
	os.WriteFile(seg, data, 0o644)
	os.Remove(filepath.Join(dir, segmentName(bases[1])+indexSuffix))

	l = openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
	defer l.Close()
	ro := l.ReadOnlyReason()
	if ro == nil || !bytes.Contains([]byte(ro.Error()), []byte(segmentName(bases[1]))) {
		t.Fatalf("want read-only naming segment %d, got %v", bases[1], ro)
	}
	hs := readAll(t, l)
	if last := hs[len(hs)-1]; last.NextOffset() > bases[2] || last.NextOffset() <= bases[1] {
		t.Fatalf("served up to %d; damage is inside [%d,%d)", last.NextOffset(), bases[1], bases[2])
	}
	// The data after the damage is still on disk for an operator.
	if _, err := os.Stat(filepath.Join(dir, segmentName(bases[2])+logSuffix)); err != nil {
		t.Fatalf("later segment was removed: %v", err)
	}
}

func TestIndexRebuild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := LogConfig{SegmentBytes: 4096, IndexIntervalBytes: 300}
	l := openTestLog(t, dir, cfg)
	for i := 0; i < 200; i++ {
		l.Append(context.Background(), makeBatch(t, 3, "i", int64(i*10)), AppendOptions{LeaderEpoch: -1})
	}
	want := readAll(t, l)
	l.Close()
	bases, _ := listSegments(dir)
	// Remove one index, garble another, truncate a third time index.
	os.Remove(filepath.Join(dir, segmentName(bases[0])+indexSuffix))
	os.WriteFile(filepath.Join(dir, segmentName(bases[1])+indexSuffix), []byte("garbage!"), 0o644)
	os.WriteFile(filepath.Join(dir, segmentName(bases[2])+timeIndexSuffix), []byte{1, 2, 3}, 0o644)
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	if n := l.Recovery().IndexesRebuilt; n != 3 {
		t.Fatalf("rebuilt %d indexes, want 3", n)
	}
	got := readAll(t, l)
	if len(got) != len(want) {
		t.Fatalf("read %d batches after rebuild, want %d", len(got), len(want))
	}
	if off, ok, _ := l.OffsetForTime(1005); !ok || off != 303 {
		t.Fatalf("time lookup after rebuild: %d %v", off, ok)
	}
	// The rebuilt index files are valid again.
	for _, b := range bases[:3] {
		s := &segment{base: b, path: filepath.Join(dir, segmentName(b)+logSuffix)}
		s.f, _ = os.Open(s.path)
		if err := s.loadIndexes(); err != nil {
			t.Fatalf("index of %d not rewritten: %v", b, err)
		}
		s.close()
	}
}

func FuzzRecovery(f *testing.F) {
	dir := f.TempDir()
	l, _ := OpenLog(dir, LogConfig{}, testkit.Logger(f))
	for i := 0; i < 3; i++ {
		l.Append(context.Background(), makeBatch(f, 2, "f", 1), AppendOptions{LeaderEpoch: -1})
	}
	l.Close()
	seed, _ := os.ReadFile(activeSegmentPath(dir))
	f.Add(seed)
	f.Add(seed[:len(seed)-5])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := OpenLog(segmentDir(t, data), LogConfig{}, testkit.Logger(t))
		if err != nil {
			return // a clear error is fine; a panic is not
		}
		defer l.Close()
		readAll(t, l)
	})
}

func TestVerifySealedFindsBitRot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := segmentedLog(t, dir, 60, "v")
	defer l.Close()
	if err := l.VerifySealed(); err != nil {
		t.Fatalf("clean log: %v", err)
	}
	seg := l.segments[1]
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xAA}, 70) // a record byte of the segment's first batch
	f.Close()
	err = l.VerifySealed()
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bit rot in %s not found: %v", seg.path, err)
	}
	dmg := l.Damage()
	if len(dmg) != 1 || dmg[0].From != seg.base || dmg[0].To != seg.base+2 || dmg[0].Segment != seg.path || dmg[0].Position != 0 {
		t.Fatalf("damage %+v, want offsets [%d, %d) at byte 0 of %s", dmg, seg.base, seg.base+2, seg.path)
	}
	// The log stays writable, a read of the damaged range says what is lost,
	// and the records after it are served.
	if _, err := l.Append(context.Background(), makeBatch(t, 1, "x", 1), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatalf("append after damage found: %v", err)
	}
	if _, err := l.Read(seg.base+1, 1<<20, -1); !errors.As(err, &ce) || ce.From != seg.base || ce.To != seg.base+2 {
		t.Fatalf("read inside the damage: %v", err)
	}
	b, err := l.Read(seg.base+2, 1<<20, -1)
	if err != nil || len(b) == 0 {
		t.Fatalf("read after the damage: %d bytes, %v", len(b), err)
	}
	if len(l.Damage()) != 1 {
		t.Fatalf("damage recorded twice: %+v", l.Damage())
	}
}

// A read that meets a batch whose CRC fails reports the damage instead of
// serving the bytes, although open trusted the segment (its index is whole).
// rottedLog is a log of 60 two-record batches whose second segment's first
// batch, at base, has a flipped record byte: its CRC no longer matches.
func rottedLog(t *testing.T) (l *Log, base int64) {
	t.Helper()
	dir := t.TempDir()
	l = segmentedLog(t, dir, 60, "v")
	seg := l.segments[1]
	path, base := seg.path, seg.base
	l.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0x55}, 80) // a record byte of the first batch
	f.Close()
	l = openTestLog(t, dir, LogConfig{SegmentBytes: 2048})
	t.Cleanup(func() { l.Close() })
	return l, base
}

func TestReadChecksCRC(t *testing.T) {
	t.Parallel()
	l, base := rottedLog(t)
	if l.ReadOnlyReason() != nil {
		t.Fatalf("open went read-only: %v", l.ReadOnlyReason())
	}
	// A read from before the damage returns the whole batches before it.
	if b, err := l.Read(base-2, 1<<20, -1); err != nil || len(b) == 0 {
		t.Fatalf("read before the damage: %d bytes, %v", len(b), err)
	}
	_, err := l.Read(base, 1<<20, -1)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.From != base || ce.To != base+2 {
		t.Fatalf("read of a damaged batch: %v", err)
	}
}
