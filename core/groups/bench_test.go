package groups

import (
	"context"
	"fmt"
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

// BenchmarkRebalance100 measures one full rebalance of a 100-member group:
// every member rejoins, the leader assigns, everyone syncs.
func BenchmarkRebalance100(b *testing.B) {
	const n = 100
	c, _ := newTestCoordinator(b, testConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := make([]string, n)
	for i := range ids {
		r, err := c.Handle(ctx, joinReq("bench", "", 9, time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = r.(*kmsg.JoinGroupResponse).MemberID
	}
	type joined struct {
		id  string
		r   *kmsg.JoinGroupResponse
		err error
	}
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		// New metadata each round, as a subscription change would: an
		// unchanged follower rejoining a Stable group gets no rebalance.
		round++
		ch := make(chan joined, n)
		for _, id := range ids {
			go func() {
				req := joinReq("bench", id, 9, time.Minute)
				req.Protocols[0].Metadata = fmt.Appendf(nil, "round-%d", round)
				r, err := c.Handle(ctx, req)
				jr, _ := r.(*kmsg.JoinGroupResponse)
				ch <- joined{id, jr, err}
			}()
		}
		var leader *kmsg.JoinGroupResponse
		gen := int32(-1)
		for range n {
			j := <-ch
			if j.err != nil || j.r.ErrorCode != 0 {
				b.Fatalf("join: %v %+v", j.err, j.r)
			}
			gen = j.r.Generation
			if j.r.LeaderID == j.id {
				leader = j.r
			}
		}
		assign := make(map[string]string, n)
		for _, m := range leader.Members {
			assign[m.MemberID] = "a"
		}
		errs := make(chan error, n)
		for _, id := range ids {
			go func() {
				var a map[string]string
				if id == leader.LeaderID {
					a = assign
				}
				r, err := c.Handle(ctx, syncReq("bench", id, gen, a))
				if err == nil && r.(*kmsg.SyncGroupResponse).ErrorCode != 0 {
					err = fmt.Errorf("sync error %d", r.(*kmsg.SyncGroupResponse).ErrorCode)
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
	}
}
