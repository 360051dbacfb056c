package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage"
)

// CreateTopics v0-v7. Topic configs are mapped onto storage.LogConfig (see
// topicconfig.go); a replication factor above 1 cannot be met by one node.
func init() { register(19, 0, 7, (*Server).handleCreateTopics) }

func (s *Server) handleCreateTopics(_ context.Context, c *call, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		if s.node != nil {
			code, msg := s.clusterCreateTopic(rt, req.ValidateOnly)
			if code != 0 {
				st.ErrorCode, st.ErrorMessage = code, strp(msg)
				st.NumPartitions, st.ReplicationFactor = -1, -1
				c.fail(code)
			} else {
				st.TopicID = topicID(rt.Topic)
				st.NumPartitions, st.ReplicationFactor = s.partitionCount(rt), rt.ReplicationFactor
				if t, ok := s.node.Metadata().Topics[rt.Topic]; ok && len(t.Partitions) > 0 {
					st.NumPartitions, st.ReplicationFactor = int32(len(t.Partitions)), int16(len(t.Partitions[0].Replicas))
				}
			}
			resp.Topics = append(resp.Topics, st)
			continue
		}
		code, msg := s.createTopic(rt, req.ValidateOnly)
		if code != 0 {
			st.ErrorCode, st.ErrorMessage = code, strp(msg)
			st.NumPartitions, st.ReplicationFactor = -1, -1
			c.fail(code)
		} else if info, ok := s.topics.Get(rt.Topic); ok || req.ValidateOnly {
			st.TopicID = topicID(rt.Topic)
			st.NumPartitions, st.ReplicationFactor = info.Partitions, 1
			if req.ValidateOnly {
				st.NumPartitions = s.partitionCount(rt)
			}
			for _, tc := range topicConfigs {
				cv := kmsg.NewCreateTopicsResponseTopicConfig()
				cv.Name, cv.Value = tc.name, strp(tc.get(info.Config))
				cv.Source = int8(kmsg.ConfigSourceDefaultConfig)
				st.Configs = append(st.Configs, cv)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (s *Server) partitionCount(rt kmsg.CreateTopicsRequestTopic) int32 {
	switch {
	case len(rt.ReplicaAssignment) > 0:
		return int32(len(rt.ReplicaAssignment))
	case rt.NumPartitions == -1:
		return s.cfg.DefaultPartitions
	default:
		return rt.NumPartitions
	}
}

func (s *Server) createTopic(rt kmsg.CreateTopicsRequestTopic, validateOnly bool) (int16, string) {
	if err := validTopicName(rt.Topic); err != nil {
		return kerr.InvalidTopicException.Code, "topic names are 1-249 of [a-zA-Z0-9._-]"
	}
	n := s.partitionCount(rt)
	if n <= 0 || n > s.cfg.MaxPartitions {
		return kerr.InvalidPartitions.Code, fmt.Sprintf("partitions must be 1-%d", s.cfg.MaxPartitions)
	}
	if rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1 {
		return kerr.InvalidReplicationFactor.Code, "this single node broker keeps one replica"
	}
	for _, a := range rt.ReplicaAssignment {
		if len(a.Replicas) != 1 || a.Replicas[0] != s.cfg.NodeID {
			return kerr.InvalidReplicaAssignment.Code, fmt.Sprintf("replicas must be [%d]", s.cfg.NodeID)
		}
	}
	lc, err := parseTopicConfigs(rt.Configs)
	if err != nil {
		return kerr.InvalidConfig.Code, err.Error()
	}
	if _, exists := s.topics.Get(rt.Topic); exists {
		return kerr.TopicAlreadyExists.Code, "topic exists"
	}
	if validateOnly {
		return 0, ""
	}
	if err := s.topics.Create(rt.Topic, n, lc); err != nil {
		if !errors.Is(err, storage.ErrTopicExists) && !errors.Is(err, storage.ErrInvalidTopic) {
			s.logger.Error("create topic", "topic", rt.Topic, "err", err)
		}
		return errorCode(err), err.Error()
	}
	s.keepTopicConfigNames(rt.Topic, rt.Configs)
	s.logger.Info("created topic", "topic", rt.Topic, "partitions", n)
	return 0, ""
}
