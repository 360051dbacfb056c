package server

import (
	"context"
	"crypto/sha256"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage"
)

// Metadata v0-v12 (v13 only adds a top-level error code).
func init() { register(3, 0, 12, (*Server).handleMetadata) }

func (s *Server) handleMetadata(_ context.Context, c *call, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	if s.node != nil {
		s.clusterMetadata(c, req, resp)
		return resp, nil
	}
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = s.cfg.NodeID, s.advertisedHost(c), s.advertisedPort(c)
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	resp.ClusterID = strp(s.cfg.ClusterID)
	resp.ControllerID = s.cfg.NodeID

	// A null list (or, before v1, an empty one) asks for every topic.
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		for _, t := range s.topics.List() {
			resp.Topics = append(resp.Topics, s.topicMetadata(t))
		}
		return resp, nil
	}
	autoCreate := req.Version < 4 || req.AllowAutoTopicCreation
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			// Lookup by topic id only: we hand out ids derived from names
			// but keep no reverse index.
			mt := kmsg.NewMetadataResponseTopic()
			mt.TopicID = rt.TopicID
			mt.ErrorCode = kerr.UnknownTopicID.Code
			c.fail(mt.ErrorCode)
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		name := *rt.Topic
		info, ok := s.topics.Get(name)
		if !ok && autoCreate && s.cfg.autoCreate() {
			if err := validTopicName(name); err != nil {
				resp.Topics = append(resp.Topics, topicError(c, name, kerr.InvalidTopicException.Code))
				continue
			}
			if err := s.autoCreateTopic(name); err != nil {
				s.logger.Warn("metadata auto-create failed", "topic", name, "err", err)
				code := errorCode(err)
				if errors.Is(err, storage.ErrInvalidTopic) {
					code = kerr.InvalidTopicException.Code
				}
				resp.Topics = append(resp.Topics, topicError(c, name, code))
				continue
			}
			info, ok = s.topics.Get(name)
		}
		if !ok {
			resp.Topics = append(resp.Topics, topicError(c, name, kerr.UnknownTopicOrPartition.Code))
			continue
		}
		resp.Topics = append(resp.Topics, s.topicMetadata(info))
	}
	return resp, nil
}

func topicError(c *call, name string, code int16) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = strp(name)
	mt.ErrorCode = code
	c.fail(code)
	return mt
}

func (s *Server) topicMetadata(t storage.TopicInfo) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = strp(t.Name)
	mt.TopicID = topicID(t.Name)
	for p := int32(0); p < t.Partitions; p++ {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p
		mp.Leader = s.cfg.NodeID
		mp.LeaderEpoch = leaderEpoch
		mp.Replicas = []int32{s.cfg.NodeID}
		mp.ISR = []int32{s.cfg.NodeID}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// topicID derives a stable non-zero id from the name, since the storage
// layer keeps no topic ids; clients only compare them.
func topicID(name string) [16]byte {
	sum := sha256.Sum256([]byte("tributary-topic/" + name))
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}

// validTopicName applies Kafka's topic name rules.
func validTopicName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return storage.ErrInvalidTopic
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return storage.ErrInvalidTopic
		}
	}
	return nil
}
