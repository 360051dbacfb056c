package server

import (
	"context"
	"crypto/sha256"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/storage"
)

// Metadata v0-v12 (v13 only adds a top-level error code).
func init() { register(3, 0, 12, (*Server).handleMetadata) }

func (s *Server) handleMetadata(_ context.Context, c *call,
	req *kmsg.MetadataRequest, resp *kmsg.MetadataResponse) (kmsg.Response, error) {
	// A null list (or, before v1, an empty one) asks for every topic.
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	autoCreate := req.Version < 4 || req.AllowAutoTopicCreation
	if !all && autoCreate {
		for _, rt := range req.Topics {
			if rt.Topic == nil || validTopicName(*rt.Topic) != nil {
				continue
			}
			if err := s.ensureTopic(*rt.Topic); err != nil {
				s.logger.Warn("metadata auto-create failed", "topic", *rt.Topic, "err", err)
			}
		}
	}
	md := s.cluster.Metadata()
	for _, b := range md.LiveBrokers() {
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID = b.ID
		mb.Host, mb.Port = s.brokerEndpoint(c, b)
		resp.Brokers = append(resp.Brokers, mb)
	}
	resp.ClusterID = strp(s.cfg.ClusterID)
	resp.ControllerID = -1
	if id, ok := s.cluster.Controller(); ok {
		resp.ControllerID = id
	}
	if all {
		for _, n := range slices.Sorted(maps.Keys(md.Topics)) {
			resp.Topics = append(resp.Topics, describeTopic(md, md.Topics[n]))
		}
		return resp, nil
	}
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.TopicID = rt.TopicID
			mt.ErrorCode = kerr.UnknownTopicID.Code
			if name, ok := s.topicByID(rt.TopicID); ok {
				mt = describeTopic(md, md.Topics[name])
			}
			c.fail(mt.ErrorCode)
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		name := *rt.Topic
		t, ok := md.Topics[name]
		switch {
		case ok:
			resp.Topics = append(resp.Topics, describeTopic(md, t))
		case autoCreate && s.cfg.autoCreate() && validTopicName(name) != nil:
			resp.Topics = append(resp.Topics, topicError(c, name, kerr.InvalidTopicException.Code))
		case !s.replicas.ready.Load():
			// Not caught up since the restart: the topic may exist (and
			// must not be created again); clients retry this error.
			resp.Topics = append(resp.Topics, topicError(c, name, kerr.LeaderNotAvailable.Code))
		default:
			resp.Topics = append(resp.Topics, topicError(c, name, kerr.UnknownTopicOrPartition.Code))
		}
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

// describeTopic is one topic's Metadata answer: per partition its leader,
// leader epoch, replicas, ISR and the replicas that are offline.
func describeTopic(md *cluster.Snapshot, t *cluster.Topic) kmsg.MetadataResponseTopic {
	alive := func(id int32) bool { b, ok := md.Brokers[id]; return ok && b.Alive }
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = strp(t.Name)
	mt.TopicID = topicIDOf(t)
	mt.IsInternal = t.Name == cluster.OffsetsTopic
	for _, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Partition
		mp.Leader = p.Leader
		mp.LeaderEpoch = p.LeaderEpoch
		mp.Replicas = slices.Clone(p.Replicas)
		mp.ISR = slices.Clone(p.ISR)
		for _, r := range p.Replicas {
			if !alive(r) {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		if p.Leader == cluster.NoLeader {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
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
