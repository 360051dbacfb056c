package server

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeProducers lists each idempotent producer's epoch and last sequence
// per partition, and answers unknown partitions with an error code.
func TestDescribeProducers(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t.TempDir()))
	c := dialRaw(t, srv.Addr())
	for i, seq := range []int32{0, 5} {
		if p := produceOne(t, c, -1, "dp", 0, buildBatch(t, 5, 4242, seq, 10)); p.ErrorCode != 0 {
			t.Fatalf("produce %d: %v", i, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	if p := produceOne(t, c, -1, "dp", 0, buildBatch(t, 3, 77, 0, 10)); p.ErrorCode != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = "dp", []int32{0, 99}
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req).(*kmsg.DescribeProducersResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("response %+v", resp)
	}
	p0, p99 := resp.Topics[0].Partitions[0], resp.Topics[0].Partitions[1]
	if p0.ErrorCode != 0 || len(p0.ActiveProducers) != 2 {
		t.Fatalf("partition 0: %+v", p0)
	}
	got := map[int64]int32{}
	for _, ap := range p0.ActiveProducers {
		got[ap.ProducerID] = ap.LastSequence
	}
	if got[4242] != 9 || got[77] != 2 {
		t.Errorf("last sequences %v, want 4242:9 77:2", got)
	}
	if p99.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown partition answered %v", kerr.ErrorForCode(p99.ErrorCode))
	}
}
