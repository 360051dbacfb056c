package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopics v0-v7. Topic configs are mapped onto storage.LogConfig (see
// topicconfig.go); the controller places the replicas (a replication factor
// above the live broker count is refused).
func init() { register(19, 0, 7, (*Server).handleCreateTopics) }

func (s *Server) handleCreateTopics(_ context.Context, c *call,
	req *kmsg.CreateTopicsRequest, resp *kmsg.CreateTopicsResponse) (kmsg.Response, error) {
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		code, msg := s.createTopic(rt, req.ValidateOnly)
		if code != 0 {
			st.ErrorCode, st.ErrorMessage = code, strp(msg)
			st.NumPartitions, st.ReplicationFactor = -1, -1
			c.fail(code)
			resp.Topics = append(resp.Topics, st)
			continue
		}
		st.NumPartitions, st.ReplicationFactor = s.partitionCount(rt), rt.ReplicationFactor
		cfgs := map[string]string{}
		if t, ok := s.cluster.Topic(rt.Topic); ok && !req.ValidateOnly {
			st.TopicID = topicIDOf(t)
			st.NumPartitions, st.ReplicationFactor = int32(len(t.Partitions)), int16(len(t.Partitions[0].Replicas))
			cfgs = t.Config
		}
		lc, _ := topicLogConfig(cfgs)
		for _, tc := range topicConfigs {
			cv := kmsg.NewCreateTopicsResponseTopicConfig()
			cv.Name, cv.Value = tc.name, strp(tc.get(lc))
			cv.Source = int8(kmsg.ConfigSourceDefaultConfig)
			if _, set := cfgs[tc.name]; set {
				cv.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
			}
			st.Configs = append(st.Configs, cv)
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
