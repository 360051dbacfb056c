package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

func txnBatch(t testing.TB, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	recs := slices.Repeat([]recordbatch.Record{{Key: []byte("k"), Value: []byte("v"), Timestamp: 1}}, n)
	opts := producerOpts(pid, epoch, seq)
	opts.Attributes = recordbatch.TransactionalBit
	return buildBatch(t, recs, opts)
}

func marker(t testing.TB, pid int64, epoch int16, commit bool) []byte {
	t.Helper()
	b, err := recordbatch.BuildMarker(pid, epoch, commit, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The LSO stays at the first open transaction's first offset, aborted
// transactions are listed for the ranges they cover, and both survive a
// clean reopen and a reopen without snapshot (kill -9 before any roll).
func TestTransactionIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openTestLog(t, dir, LogConfig{})
	ctx := context.Background()
	app := func(b []byte) AppendResult {
		t.Helper()
		h, _ := recordbatch.ParseHeader(b)
		// Markers come from the coordinator, not through idempotence checks.
		res, err := l.Append(ctx, b, AppendOptions{Idempotent: !h.IsControl(), LeaderEpoch: -1})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	app(makeBatch(t, 2, "plain", 1)) // 0-1
	app(txnBatch(t, 7, 0, 0, 3))     // 2-4: pid 7 opens
	app(txnBatch(t, 8, 0, 0, 1))     // 5: pid 8 opens
	if got := l.LastStableOffset(l.NextOffset()); got != 2 {
		t.Fatalf("LSO with two open transactions = %d, want 2", got)
	}
	app(marker(t, 7, 0, false)) // 6: abort pid 7
	if got := l.LastStableOffset(l.NextOffset()); got != 5 {
		t.Fatalf("LSO after abort = %d, want 5", got)
	}
	if got := l.LastStableOffset(6); got != 2 {
		t.Fatalf("LSO with the abort marker above the HW = %d, want 2", got)
	}
	app(marker(t, 8, 0, true))   // 7: commit pid 8
	app(txnBatch(t, 7, 0, 3, 1)) // 8: pid 7 opens again
	want := []AbortedTxn{{ProducerID: 7, FirstOffset: 2, LastOffset: 6}}
	check := func(l *Log, when string) {
		t.Helper()
		if got := l.LastStableOffset(l.NextOffset()); got != 8 {
			t.Fatalf("%s: LSO = %d, want 8", when, got)
		}
		if got := l.AbortedTxns(0, 9); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: aborted = %v, want %v", when, got, want)
		}
		if got := l.AbortedTxns(7, 9); len(got) != 0 {
			t.Fatalf("%s: aborted after the marker = %v", when, got)
		}
	}
	check(l, "live")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, LogConfig{})
	check(l, "reopened from snapshot")
	l.Close()
	if err := removeFile(dir, txnSnapshotFile); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, LogConfig{})
	defer l.Close()
	check(l, "rebuilt from the log")

	// A truncation below the abort marker reopens the aborted transaction.
	if err := l.TruncateTo(6); err != nil {
		t.Fatal(err)
	}
	if got := l.LastStableOffset(l.NextOffset()); got != 2 {
		t.Fatalf("after truncation: LSO = %d, want 2", got)
	}
}

// An abort marker from a newer epoch fences the old epoch at the partition.
func TestMarkerFencesOldEpoch(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{})
	defer l.Close()
	ctx := context.Background()
	opts := AppendOptions{Idempotent: true, LeaderEpoch: -1}
	if _, err := l.Append(ctx, txnBatch(t, 3, 0, 0, 1), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, marker(t, 3, 1, false), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, txnBatch(t, 3, 0, 1, 1), opts); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("zombie append at the old epoch: %v", err)
	}
	if _, err := l.Append(ctx, txnBatch(t, 3, 1, 0, 1), opts); err != nil {
		t.Fatalf("new epoch from sequence 0: %v", err)
	}
}

func removeFile(dir, name string) error { return os.Remove(filepath.Join(dir, name)) }

// A partition of many small transactions keeps only the ended ones whose
// markers are not yet below the high watermark.
func TestEndedTransactionsPruned(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{})
	defer l.Close()
	ctx := context.Background()
	for i := range 100 {
		if _, err := l.Append(ctx, txnBatch(t, 5, 0, int32(i), 1), AppendOptions{Idempotent: true, LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, marker(t, 5, 0, true), AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
		if lso := l.LastStableOffset(l.NextOffset()); lso != l.NextOffset() {
			t.Fatalf("LSO %d, log end %d", lso, l.NextOffset())
		}
	}
	l.mu.RLock()
	n := len(l.txns.ended)
	l.mu.RUnlock()
	if n > 1 {
		t.Fatalf("%d ended transactions kept", n)
	}
}

// Idle per-batch producers are forgotten after ProducerExpiry; one with a
// transaction open and a source-sequenced one (a bridge) are kept.
func TestIdleProducersExpire(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{ProducerExpiry: time.Millisecond})
	defer l.Close()
	ctx := context.Background()
	const idle, open, bridge = 7, 8, 4242
	seqs := func(pid int64) SequenceMode {
		if pid == bridge {
			return SequenceFromSource
		}
		return SequencePerBatch
	}
	opts := AppendOptions{Idempotent: true, LeaderEpoch: -1, Sequences: seqs}
	for _, b := range [][]byte{idemBatch(t, idle, 0, 0, 3), txnBatch(t, open, 0, 0, 2), forwardedBatchEpoch(t, bridge, 0, 0, 10)} {
		if _, err := l.Append(ctx, b, opts); err != nil {
			t.Fatal(err)
		}
	}
	known := func() []int64 {
		var ids []int64
		for _, p := range l.Producers() {
			ids = append(ids, p.ID)
		}
		return ids
	}
	if got := known(); !slices.Equal(got, []int64{idle, open, bridge}) {
		t.Fatalf("producers before expiry: %v", got)
	}
	testkit.Eventually(t, 5*time.Second, "idle producer forgotten", func() bool {
		l.ExpireProducers()
		return !slices.Contains(known(), idle)
	})
	if got := known(); !slices.Equal(got, []int64{open, bridge}) {
		t.Fatalf("producers after expiry: %v", got)
	}
	// The forgotten producer's retry is new data now; the bridge's re-send
	// is still recognised.
	if res, err := l.Append(ctx, idemBatch(t, idle, 0, 0, 3), opts); err != nil || res.Duplicate {
		t.Fatalf("retry of a forgotten producer: %+v %v", res, err)
	}
	if res, err := l.Append(ctx, forwardedBatchEpoch(t, bridge, 0, 0, 10), opts); err != nil || !res.Duplicate {
		t.Fatalf("bridge re-send after expiry: %+v %v", res, err)
	}
	// Once its transaction ends, the open one expires too.
	if _, err := l.Append(ctx, marker(t, open, 0, true), AppendOptions{LeaderEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "producer forgotten after its commit", func() bool {
		l.ExpireProducers()
		return !slices.Contains(known(), open)
	})
}
