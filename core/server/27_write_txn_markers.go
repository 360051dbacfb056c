package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
)

// WriteTxnMarkers v0-v1: a transaction coordinator on another broker asks
// this one to end a transaction on partitions it leads. For an offsets
// partition the "marker" settles the offsets the producer staged for the
// groups this broker coordinates there (txn_cluster.go).
func init() { register(27, 0, 1, (*Server).handleWriteTxnMarkers) }

func (s *Server) handleWriteTxnMarkers(ctx context.Context, c *call,
	req *kmsg.WriteTxnMarkersRequest, resp *kmsg.WriteTxnMarkersResponse) (kmsg.Response, error) {
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, part := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = part
				var err error
				if t.Topic == cluster.OffsetsTopic {
					if !s.ownsOffsetsPartition(part) {
						rp.ErrorCode = kerr.NotLeaderForPartition.Code
					} else {
						err = s.settleOffsetsPartition(ctx, part, m.ProducerID, m.Committed)
					}
				} else {
					var p *Partition
					if p, err = s.partition(t.Topic, part); err == nil {
						err = s.markDurably(ctx, p, m.ProducerID, m.ProducerEpoch, m.Committed)
					}
				}
				if err != nil {
					rp.ErrorCode = errorCode(err)
					s.logger.Warn("write transaction marker", "topic", t.Topic, "partition", part, "pid", m.ProducerID, "err", err)
				}
				c.fail(rp.ErrorCode)
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp, nil
}
