package storage

import (
	"context"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestReplicaKeepsSourceProducers: a replica's appends (KeepOffsets, no
// dedupe) remember a source-sequenced producer in that mode, so it never
// expires there either. It used to be stored as per-batch and forgotten
// after ProducerExpiry; once the replica led, an edge's re-send of a batch
// it already held was appended again.
func TestReplicaKeepsSourceProducers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openTestLog(t, t.TempDir(), LogConfig{ProducerExpiry: time.Millisecond})
	defer l.Close()
	const pid = 4242
	source := func(int64) SequenceMode { return SequenceFromSource }
	appended := time.Now()
	if _, err := l.Append(ctx, forwardedBatchEpoch(t, pid, 0, 0, 10), AppendOptions{KeepOffsets: true, LeaderEpoch: -1, Sequences: source}); err != nil {
		t.Fatal(err)
	}
	testkit.Poll(time.Second, func() bool { return time.Since(appended) > 10*time.Millisecond }) // past the expiry
	if n := l.ExpireProducers(); n != 0 {
		t.Fatalf("the replica forgot %d source-sequenced producers", n)
	}
	res, err := l.Append(ctx, forwardedBatchEpoch(t, pid, 0, 0, 10), AppendOptions{Idempotent: true, LeaderEpoch: 1, Sequences: source})
	if err != nil || !res.Duplicate || l.NextOffset() != 10 {
		t.Fatalf("the re-send once this replica leads: %+v, %v, log end %d; want a duplicate and 10", res, err, l.NextOffset())
	}
}

// TestReplayedSourceProducerKeptAfterCrash: a bridge's producer first seen
// after the last producer snapshot is replayed at open with no mode; once
// the owner's modes are applied it is source-sequenced again and never
// expires. It used to be taken as per-batch and forgotten after
// ProducerExpiry, so an edge back after a day re-sent what the log held.
func TestReplayedSourceProducerKeptAfterCrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	cfg := LogConfig{ProducerExpiry: time.Millisecond}
	const pid = 4242
	source := func(int64) SequenceMode { return SequenceFromSource }
	l := openTestLog(t, dir, cfg)
	defer l.Close()
	if _, err := l.Append(ctx, forwardedBatchEpoch(t, pid, 0, 0, 10), AppendOptions{Idempotent: true, LeaderEpoch: -1, Sequences: source}); err != nil {
		t.Fatal(err)
	}
	crashed := openTestLog(t, crashCopy(t, dir), cfg) // no snapshot: the batch is replayed
	defer crashed.Close()
	crashed.adoptSequenceModes(source)
	appended := time.Now()
	testkit.Poll(time.Second, func() bool { return time.Since(appended) > 10*time.Millisecond }) // past the expiry
	if n := crashed.ExpireProducers(); n != 0 {
		t.Fatalf("after a crash the log forgot %d source-sequenced producers", n)
	}
	res, err := crashed.Append(ctx, forwardedBatchEpoch(t, pid, 0, 0, 10), AppendOptions{Idempotent: true, LeaderEpoch: -1, Sequences: source})
	if err != nil || !res.Duplicate {
		t.Fatalf("the re-send after the crash: %+v, %v; want a duplicate", res, err)
	}
}
