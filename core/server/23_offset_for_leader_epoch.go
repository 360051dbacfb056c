package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetForLeaderEpoch v0-v4; franz-go uses it (for truncation detection)
// only when it is advertised at v2+; followers use it to truncate after a
// leader change.
func init() { register(23, 0, 4, (*Server).handleOffsetForLeaderEpoch) }

func (s *Server) handleOffsetForLeaderEpoch(_ context.Context, c *call,
	req *kmsg.OffsetForLeaderEpochRequest, resp *kmsg.OffsetForLeaderEpochResponse) (kmsg.Response, error) {
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := newOffsetForLeaderEpochPartition(rp.Partition, 0)
			p, code := s.partitionAtEpoch(rt.Topic, rp.Partition, rp.CurrentLeaderEpoch)
			switch {
			case code != 0:
				sp.ErrorCode = code
			case rp.LeaderEpoch > p.LeaderEpoch() || rp.LeaderEpoch < 0:
				// An epoch this log never had: undefined (-1/-1), as Kafka answers.
			default:
				sp.LeaderEpoch, sp.EndOffset = p.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			c.fail(sp.ErrorCode)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// newOffsetForLeaderEpochPartition is a partition's answer before its
// epoch is looked up: undefined (-1/-1), code as its error.
func newOffsetForLeaderEpochPartition(partition int32, code int16) kmsg.OffsetForLeaderEpochResponseTopicPartition {
	sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
	sp.Partition, sp.ErrorCode = partition, code
	sp.LeaderEpoch, sp.EndOffset = -1, -1
	return sp
}
