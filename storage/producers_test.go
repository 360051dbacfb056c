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
