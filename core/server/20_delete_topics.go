package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteTopics v0-v6 (v6 may name topics by id).
func init() { register(20, 0, 6, (*Server).handleDeleteTopics) }

func (s *Server) handleDeleteTopics(_ context.Context, c *call,
	req *kmsg.DeleteTopicsRequest, resp *kmsg.DeleteTopicsResponse) (kmsg.Response, error) {
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if req.Version >= 6 {
		for _, t := range req.Topics {
			targets = append(targets, target{t.Topic, t.TopicID})
		}
	} else {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: strp(n)})
		}
	}
	for _, t := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = t.name, t.id
		name, ok := "", false
		if t.name != nil {
			name, ok = *t.name, true
		} else {
			name, ok = s.topicByID(t.id)
		}
		switch {
		case !ok:
			st.ErrorCode = kerr.UnknownTopicID.Code
		default:
			st.Topic = strp(name)
			if t, ok := s.cluster.Topic(name); ok {
				st.TopicID = topicIDOf(t)
			}
			ctx, cancel := context.WithTimeout(s.ctx, proposalTimeout)
			err := s.cluster.DeleteTopic(ctx, name)
			cancel()
			if err != nil {
				st.ErrorCode, st.ErrorMessage = errorCode(err), strp(err.Error())
			} else {
				s.replicas.reconcile()
				s.logger.Info("deleted topic", "topic", name)
			}
		}
		c.fail(st.ErrorCode)
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// topicByID finds the topic whose id is id.
func (s *Server) topicByID(id [16]byte) (string, bool) {
	for name, t := range s.cluster.Metadata().Topics {
		if topicIDOf(t) == id {
			return name, true
		}
	}
	return "", false
}
