package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/txns"
)

// AddPartitionsToTxn v0-v3: the partitions a transactional producer is about
// to write join its transaction (starting it). v4+ is the broker-to-broker
// batched form of KIP-890, not served.
func init() { register(24, 0, 3, (*Server).handleAddPartitionsToTxn) }

func (s *Server) handleAddPartitionsToTxn(ctx context.Context, c *call,
	req *kmsg.AddPartitionsToTxnRequest, resp *kmsg.AddPartitionsToTxnResponse) (kmsg.Response, error) {
	code := s.coordinateTxn(c, req.TransactionalID, req.Version, 2, func() int16 {
		var parts []txns.TopicPartition
		var partCode int16
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				if _, err := s.partition(t.Topic, p); err != nil && errorCode(err) != kerr.NotLeaderForPartition.Code {
					partCode = errorCode(err)
				}
				parts = append(parts, txns.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		if partCode != 0 {
			return partCode
		}
		return s.txns.Add(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts, nil)
	})
	fillAddPartitions(req, resp, code)
	return resp, nil
}

// fillAddPartitions answers every partition of req with code: a
// transaction takes all of them or none.
func fillAddPartitions(req *kmsg.AddPartitionsToTxnRequest, resp *kmsg.AddPartitionsToTxnResponse, code int16) {
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
}
