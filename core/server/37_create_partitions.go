package server

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions v0-v3: grow a topic to Count partitions.
func init() { register(37, 0, 3, (*Server).handleCreatePartitions) }

func (s *Server) handleCreatePartitions(_ context.Context, c *call, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		info, ok := s.topics.Get(rt.Topic)
		if s.node != nil {
			t, have := s.node.Metadata().Topics[rt.Topic]
			ok = have
			if have {
				info.Partitions = int32(len(t.Partitions))
			}
		}
		switch {
		case !ok:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case rt.Count <= info.Partitions:
			st.ErrorCode = kerr.InvalidPartitions.Code
			st.ErrorMessage = strp(fmt.Sprintf("topic has %d partitions; partitions can only grow", info.Partitions))
		case rt.Count > s.cfg.MaxPartitions:
			st.ErrorCode = kerr.InvalidPartitions.Code
			st.ErrorMessage = strp(fmt.Sprintf("at most %d partitions", s.cfg.MaxPartitions))
		case req.ValidateOnly:
		case s.node != nil:
			ctx, cancel := context.WithTimeout(s.ctx, proposalTimeout)
			err := s.node.CreatePartitions(ctx, rt.Topic, rt.Count)
			cancel()
			if err != nil {
				st.ErrorCode, st.ErrorMessage = clusterErrorCode(err), strp(err.Error())
			} else {
				s.replicas.reconcile()
				s.logger.Info("added partitions", "topic", rt.Topic, "partitions", rt.Count)
			}
		default:
			if err := s.topics.AddPartitions(rt.Topic, rt.Count); err != nil {
				st.ErrorCode, st.ErrorMessage = errorCode(err), strp(err.Error())
			} else {
				s.logger.Info("added partitions", "topic", rt.Topic, "partitions", rt.Count)
			}
		}
		c.fail(st.ErrorCode)
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
