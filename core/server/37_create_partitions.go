package server

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions v0-v3: grow a topic to Count partitions.
func init() { register(37, 0, 3, (*Server).handleCreatePartitions) }

func (s *Server) handleCreatePartitions(_ context.Context, c *call,
	req *kmsg.CreatePartitionsRequest, resp *kmsg.CreatePartitionsResponse) (kmsg.Response, error) {
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		t, ok := s.cluster.Topic(rt.Topic)
		switch {
		case !ok:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case rt.Count <= int32(len(t.Partitions)):
			st.ErrorCode = kerr.InvalidPartitions.Code
			st.ErrorMessage = strp(fmt.Sprintf("topic has %d partitions; partitions can only grow", len(t.Partitions)))
		case rt.Count > s.cfg.MaxPartitions:
			st.ErrorCode = kerr.InvalidPartitions.Code
			st.ErrorMessage = strp(fmt.Sprintf("at most %d partitions", s.cfg.MaxPartitions))
		case req.ValidateOnly:
		default:
			ctx, cancel := context.WithTimeout(s.ctx, proposalTimeout)
			err := s.cluster.CreatePartitions(ctx, rt.Topic, rt.Count)
			cancel()
			if err != nil {
				st.ErrorCode, st.ErrorMessage = errorCode(err), strp(err.Error())
			} else {
				s.replicas.reconcile()
				s.logger.Info("added partitions", "topic", rt.Topic, "partitions", rt.Count)
			}
		}
		c.fail(st.ErrorCode)
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
