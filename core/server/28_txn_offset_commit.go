package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage/meta"
)

// TxnOffsetCommit v0-v3: offsets a transactional producer commits for a
// consumer group; they are staged (txn.go) and become the group's committed
// offsets when the transaction commits. Served by the group's coordinator.
func init() { register(28, 0, 3, (*Server).handleTxnOffsetCommit) }

// txnCommitChecker is a group coordinator that fences zombie members'
// transactional commits (core/groups does).
type txnCommitChecker interface {
	CheckTxnCommit(group string, generation int32, memberID string, instanceID *string) int16
}

func (s *Server) handleTxnOffsetCommit(ctx context.Context, c *call,
	req *kmsg.TxnOffsetCommitRequest, resp *kmsg.TxnOffsetCommitResponse) (kmsg.Response, error) {
	var code int16
	switch {
	case req.Group == "":
		code = kerr.InvalidGroupID.Code
	case !s.coordinates(req.Group):
		code = kerr.NotCoordinator.Code
	}
	if gc, ok := s.groups.(txnCommitChecker); ok && code == 0 && req.Version >= 3 {
		code = gc.CheckTxnCommit(req.Group, req.Generation, req.MemberID, req.InstanceID)
	}
	if code == 0 {
		if _, ok := s.txns.Describe(req.TransactionalID); ok {
			// Coordinated here: the group must be in the ongoing transaction.
			code = txnErrorCode(s.txns.Ongoing(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group), req.Version, 2)
		}
	}
	offs := map[meta.TopicPartition]meta.OffsetCommit{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			oc := meta.OffsetCommit{Offset: p.Offset, LeaderEpoch: p.LeaderEpoch}
			if p.Metadata != nil {
				oc.Metadata = *p.Metadata
			}
			offs[meta.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = oc
		}
	}
	if code == 0 {
		if err := s.stageTxnOffsets(ctx, req.Group, req.ProducerID, offs); err != nil {
			s.logger.Warn("stage transactional offsets", "group", req.Group, "err", err)
			code = kerr.UnknownServerError.Code
		}
	}
	c.fail(code)
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
