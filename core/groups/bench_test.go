package groups

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkHeartbeat measures the coordinator's cost per heartbeat of a
// stable member (no disk involved).
func BenchmarkHeartbeat(b *testing.B) {
	c, _ := newTestCoordinator(b, testConfig())
	ids, gen := stableGroupB(b, c)
	req := kmsg.NewPtrHeartbeatRequest()
	req.SetVersion(4)
	req.Group, req.MemberID, req.Generation = "bench", ids, gen
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Handle(ctx, req)
		if err != nil || resp.(*kmsg.HeartbeatResponse).ErrorCode != 0 {
			b.Fatalf("heartbeat: %v %+v", err, resp)
		}
	}
}

// BenchmarkOffsetCommit measures one OffsetCommit of 8 partitions, each
// an fsynced bbolt transaction: the figure is the metadata disk's.
func BenchmarkOffsetCommit(b *testing.B) {
	c, _ := newTestCoordinator(b, testConfig())
	req := kmsg.NewPtrOffsetCommitRequest()
	req.SetVersion(8)
	req.Group, req.Generation = "bench", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "sensors"
	for p := range int32(8) {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition = p
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	ctx := context.Background()
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		off++
		for i := range req.Topics[0].Partitions {
			req.Topics[0].Partitions[i].Offset = off
		}
		resp, err := c.Handle(ctx, req)
		if err != nil || resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode != 0 {
			b.Fatalf("commit: %v %+v", err, resp)
		}
	}
}

// stableGroupB makes a one-member Stable group "bench" without the
// *testing.T helpers.
func stableGroupB(b *testing.B, c *Coordinator) (string, int32) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	r, err := c.Handle(ctx, joinReq("bench", "", 3, time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	jr := r.(*kmsg.JoinGroupResponse)
	if _, err := c.Handle(ctx, syncReq("bench", jr.MemberID, jr.Generation, nil)); err != nil {
		b.Fatal(err)
	}
	return jr.MemberID, jr.Generation
}
