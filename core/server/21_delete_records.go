package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteRecords v0-v2: moves each partition's log start offset (offset -1
// means the high watermark); the low watermark answered is the new start.
// An offset past the high watermark is OFFSET_OUT_OF_RANGE.
func init() { register(21, 0, 2, (*Server).handleDeleteRecords) }

func (s *Server) handleDeleteRecords(_ context.Context, c *call,
	req *kmsg.DeleteRecordsRequest, resp *kmsg.DeleteRecordsResponse) (kmsg.Response, error) {
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := newDeleteRecordsPartition(rp.Partition, 0)
			p, err := s.partition(rt.Topic, rp.Partition)
			if err == nil {
				sp.LowWatermark, err = p.DeleteRecordsBefore(rp.Offset)
				if err == nil {
					s.logger.Info("deleted records", "topic", rt.Topic, "partition", rp.Partition, "log_start_offset", sp.LowWatermark)
				}
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				if sp.ErrorCode != kerr.OffsetOutOfRange.Code { // keeps the current start
					sp.LowWatermark = -1
				}
				c.fail(sp.ErrorCode)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// newDeleteRecordsPartition is a partition's answer before anything is
// deleted: no low watermark (-1), code as its error.
func newDeleteRecordsPartition(partition int32, code int16) kmsg.DeleteRecordsResponseTopicPartition {
	sp := kmsg.NewDeleteRecordsResponseTopicPartition()
	sp.Partition, sp.ErrorCode, sp.LowWatermark = partition, code, -1
	return sp
}
