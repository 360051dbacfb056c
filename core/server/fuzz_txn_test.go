package server

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// FuzzTxnDispatch is FuzzDispatch seeded with the transaction APIs
// (InitProducerId with a transactional id, AddPartitionsToTxn,
// AddOffsetsToTxn, TxnOffsetCommit, EndTxn, WriteTxnMarkers, Describe- and
// ListTransactions, a transactional produce and a read_committed fetch)
// against a broker with an ongoing transaction: no input may panic, and
// every answer is a well-formed frame for its correlation id.
func FuzzTxnDispatch(f *testing.F) {
	srv := fuzzBroker(f)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "fuzz", 1, 1
	if code, msg := srv.createTopic(rt, false); code != 0 {
		f.Fatalf("create topic: %d %s", code, msg)
	}
	ctx := context.Background()
	// The cluster of one coordinates "fz" once its offsets partition exists
	// and has been replayed, as any broker would.
	if _, err := srv.cluster.Coordinator(ctx, "fz"); err != nil {
		f.Fatal(err)
	}
	if !testkit.Poll(10*time.Second, func() bool { return srv.txnOwner("fz") == 0 }) {
		f.Fatal("never became coordinator of fz")
	}
	r := srv.txns.InitProducerID(ctx, "fz", 60000, -1, -1)
	if r.Code != 0 {
		f.Fatalf("init: %d", r.Code)
	}

	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis = 4, kmsg.StringPtr("fz2"), 60000
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.Version, add.TransactionalID, add.ProducerID, add.ProducerEpoch = 3, "fz", r.ProducerID, r.Epoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "fuzz", Partitions: []int32{0}}}
	addOffs := kmsg.NewPtrAddOffsetsToTxnRequest()
	addOffs.Version, addOffs.TransactionalID, addOffs.ProducerID, addOffs.ProducerEpoch, addOffs.Group = 3, "fz", r.ProducerID, r.Epoch, "g"
	toc := kmsg.NewPtrTxnOffsetCommitRequest()
	toc.Version, toc.TransactionalID, toc.Group, toc.ProducerID, toc.ProducerEpoch = 3, "fz", "g", r.ProducerID, r.Epoch
	toc.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "fuzz", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	end := kmsg.NewPtrEndTxnRequest()
	end.Version, end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = 3, "fz", r.ProducerID, r.Epoch, true
	wtm := kmsg.NewPtrWriteTxnMarkersRequest()
	wtm.Version = 1
	wtm.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: r.ProducerID, ProducerEpoch: r.Epoch, Committed: false,
		Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "fuzz", Partitions: []int32{0}}}}}
	desc := kmsg.NewPtrDescribeTransactionsRequest()
	desc.TransactionalIDs = []string{"fz", "nope"}
	list := kmsg.NewPtrListTransactionsRequest()
	list.Version, list.StateFilters, list.DurationFilterMillis = 1, []string{"Ongoing", "Bogus"}, -1
	batch, err := recordbatch.Build([]recordbatch.Record{{Timestamp: 1, Value: []byte("v")}},
		recordbatch.BuildOptions{ProducerID: r.ProducerID, ProducerEpoch: r.Epoch, BaseSequence: 0, LeaderEpoch: -1, Attributes: recordbatch.TransactionalBit})
	if err != nil {
		f.Fatal(err)
	}
	prod := produceReq(-1, "fuzz", 0, batch)
	prod.TransactionID = kmsg.StringPtr("fz")
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.MaxWaitMillis, fetch.IsolationLevel = 11, 10, 1
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "fuzz", Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 1 << 20}}}}
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorType, find.CoordinatorKeys = 4, 1, []string{"fz"}
	for _, req := range []kmsg.Request{init, add, addOffs, toc, prod, fetch, end, wtm, desc, list, find} {
		addSeed(f, req)
	}

	fuzzFrames(f, srv)
}
