package server

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/core/txns"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// TestRewriteMarkersOnlyWhereLost: a coordinator that loads a transaction
// end whose markers were not known to be durable writes a marker again
// only where the producer's transaction is still open from before the
// mark (the marker was lost), never where the marker survived and the
// producer has opened its next transaction since (ending that one would
// commit it behind its back).
func TestRewriteMarkersOnlyWhereLost(t *testing.T) {
	t.Parallel()
	srv, _ := startWithTopics(t, 2, "rw")
	ctx := context.Background()
	const pid, epoch = 42, 0
	txnBatch := func(seq int32) []byte {
		t.Helper()
		b, err := recordbatch.Build([]recordbatch.Record{{Value: []byte("v")}}, recordbatch.BuildOptions{
			ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, LeaderEpoch: -1,
			Attributes: recordbatch.TransactionalBit,
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	part := func(id int32) *Partition {
		t.Helper()
		p, err := srv.partition("rw", id)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	lost, kept := part(0), part(1)
	for _, p := range []*Partition{lost, kept} {
		if _, err := p.Append(ctx, txnBatch(0), true); err != nil {
			t.Fatal(err)
		}
	}
	// Partition 1 got its marker (offset 1) and then the producer's next
	// transaction; on partition 0 the marker "was lost": the transaction
	// is still open, from offset 0.
	off, err := srv.appendMarker(ctx, kept, pid, epoch, true)
	if err != nil || off != 1 {
		t.Fatalf("marker at %d, %v", off, err)
	}
	if _, err := kept.Append(ctx, txnBatch(1), true); err != nil {
		t.Fatal(err)
	}
	end := txns.Ended{ProducerID: pid, Epoch: epoch, Commit: true, Marks: []txns.Mark{
		{Topic: "rw", Partition: 0, Offset: 1}, {Topic: "rw", Partition: 1, Offset: 1},
	}}
	if err := srv.txnb.RewriteMarkers(ctx, end); err != nil {
		t.Fatal(err)
	}
	if first, open := lost.log.OpenTxns()[pid]; open {
		t.Fatalf("partition 0: the lost marker was not rewritten (transaction open from %d)", first)
	}
	if lost.EndOffset() != 2 {
		t.Fatalf("partition 0 ends at %d, want 2 (data, marker)", lost.EndOffset())
	}
	if first, open := kept.log.OpenTxns()[pid]; !open || first != 2 {
		t.Fatalf("partition 1: the producer's next transaction (from 2) was ended: open %v from %d", open, first)
	}
	if kept.EndOffset() != 3 {
		t.Fatalf("partition 1 ends at %d, want 3 (nothing written)", kept.EndOffset())
	}
	// Rewriting again is a no-op everywhere.
	if err := srv.txnb.RewriteMarkers(ctx, end); err != nil || lost.EndOffset() != 2 || kept.EndOffset() != 3 {
		t.Fatalf("second rewrite: %v, ends %d %d", err, lost.EndOffset(), kept.EndOffset())
	}
}

// TestTxnProduceWaitsForLoadedState: a broker alone in its cluster refuses
// transactional writes, with a retriable error, while the producer's
// transaction state is not loaded or its lost markers are being rewritten.
func TestTxnProduceWaitsForLoadedState(t *testing.T) {
	t.Parallel()
	srv, _ := startWithTopics(t, 1, "gate")
	ctx := context.Background()
	produceTxn(t, newClient(t, srv.Addr(), kgo.TransactionalID("g")), "gate", true, "v")
	r, ok := srv.txns.Describe("g")
	if !ok {
		t.Fatal("no state for the transactional id")
	}
	if code := srv.txns.Add(ctx, "g", r.ProducerID, r.Epoch, []txns.TopicPartition{{Topic: "gate"}}, nil); code != 0 {
		t.Fatalf("add: %d", code)
	}
	h := recordbatch.Header{ProducerID: r.ProducerID, ProducerEpoch: r.Epoch, Attributes: recordbatch.TransactionalBit}
	id := "g"
	if code, msg := srv.checkTxnProduce(&id, h, "gate", 0); code != 0 {
		t.Fatalf("loaded state: refused %d %s", code, msg)
	}
	part, _ := srv.offsetsPartitionOf(id)
	srv.txnb.setLoaded(part, false)
	if code, _ := srv.checkTxnProduce(&id, h, "gate", 0); code != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("state not loaded: code %d, want COORDINATOR_LOAD_IN_PROGRESS", code)
	}
	srv.txnb.setLoaded(part, true)
	if code, msg := srv.checkTxnProduce(&id, h, "gate", 0); code != 0 {
		t.Fatalf("reloaded: refused %d %s", code, msg)
	}
}
