package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets v0-v7: earliest (-2), latest (-1) and by timestamp. v0 answers
// in its old offsets-array form.
func init() { register(2, 0, 7, (*Server).handleListOffsets) }

// Special timestamps.
const (
	listLatest       = -1
	listEarliest     = -2
	listMaxTimestamp = -3
)

func (s *Server) handleListOffsets(_ context.Context, c *call,
	req *kmsg.ListOffsetsRequest, resp *kmsg.ListOffsetsResponse) (kmsg.Response, error) {
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := newListOffsetsPartition(rp.Partition, 0)
			code := s.listOffset(rt.Topic, rp, &sp, req.IsolationLevel)
			if code != 0 {
				sp.ErrorCode = code
				c.fail(code)
			}
			if req.Version == 0 && code == 0 && sp.Offset >= 0 {
				sp.OldStyleOffsets = []int64{sp.Offset}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// newListOffsetsPartition is a partition's answer before its offset is
// found: none (-1), code as its error.
func newListOffsetsPartition(partition int32, code int16) kmsg.ListOffsetsResponseTopicPartition {
	sp := kmsg.NewListOffsetsResponseTopicPartition()
	sp.Partition, sp.ErrorCode = partition, code
	sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
	return sp
}

func (s *Server) listOffset(topic string, rp kmsg.ListOffsetsRequestTopicPartition, sp *kmsg.ListOffsetsResponseTopicPartition, isolation int8) int16 {
	p, code := s.partitionAtEpoch(topic, rp.Partition, rp.CurrentLeaderEpoch)
	if code != 0 {
		return code
	}
	sp.LeaderEpoch = p.LeaderEpoch()
	switch rp.Timestamp {
	case listLatest, listMaxTimestamp:
		// Max-timestamp lookups would need a scan of the time index; the
		// latest offset is a safe answer for "where does new data begin".
		sp.Offset = p.HighWatermark()
		if isolation == 1 { // read_committed: the LSO (txn_partition.go)
			sp.Offset = p.LastStableOffset()
		}
	case listEarliest:
		sp.Offset = p.LogStartOffset()
	default:
		if rp.Timestamp < 0 {
			return kerr.InvalidRequest.Code
		}
		off, ok, err := p.OffsetForTime(rp.Timestamp)
		if err != nil {
			s.logger.Warn("list offsets by time failed", "topic", topic, "partition", rp.Partition, "err", err)
			return errorCode(err)
		}
		if !ok {
			// No record that late: Kafka answers offset -1.
			sp.LeaderEpoch = -1
			return 0
		}
		sp.Offset = off
		sp.Timestamp = rp.Timestamp
	}
	return 0
}
