package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/storage"
)

// Cluster mode: membership and metadata come from a cluster.Node; every
// broker keeps a local log for every partition of every topic (storage has no
// partial topics), but only the replicas named in the metadata are used. The
// replica manager (replica.go) follows the metadata and runs the leader and
// follower sides of replication.

// Topic configs the cluster handles itself rather than storage.
const (
	minISRConfig = "min.insync.replicas"
)

// startCluster starts the cluster node once the Kafka listener is bound (its
// advertised address is what other brokers publish to clients).
func (s *Server) startCluster() error {
	cc := *s.cfg.Cluster
	cc.BrokerID = s.cfg.NodeID
	cc.KafkaAddr = s.AdvertisedAddr()
	if cc.DataDir == "" {
		cc.DataDir = filepath.Join(s.cfg.DataDir, "cluster")
	}
	if cc.Registerer == nil {
		cc.Registerer = s.m.reg
	}
	node, err := cluster.NewNode(cc, s.logger.With("component", "cluster"))
	if err != nil {
		return fmt.Errorf("cluster node: %w", err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := node.Start(ctx); err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}
	s.node = node
	s.replicas = newReplicaManager(s)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.replicas.run(s.ctx)
	}()
	if s.cfg.securityConfigured() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.syncSecurity(s.ctx)
		}()
	}
	return nil
}

// Node is the cluster membership, or nil in single-node mode.
func (s *Server) Node() *cluster.Node { return s.node }

// clusterErrorCode maps cluster proposal errors to Kafka codes.
func clusterErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, cluster.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, cluster.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, cluster.ErrInvalidReplicationFactor):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, cluster.ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, cluster.ErrInvalidTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return kerr.RequestTimedOut.Code
	case errors.Is(err, cluster.ErrClosed):
		return kerr.NotController.Code
	default:
		return errorCode(err)
	}
}

// proposalTimeout bounds a metadata change made on a client's behalf.
const proposalTimeout = 10 * time.Second

// clusterPartition is s.partition in cluster mode: the partition must exist
// in the metadata and this broker must lead it.
func (s *Server) clusterPartition(topic string, id int32, autoCreate bool) (*Partition, error) {
	md := s.node.Metadata()
	if _, ok := md.Topics[topic]; !ok && autoCreate && s.cfg.autoCreate() {
		if err := s.clusterAutoCreate(topic); err != nil {
			return nil, err
		}
	}
	r, err := s.replicas.lookup(topic, id)
	if err != nil {
		return nil, fmt.Errorf("partition %s/%d: %w", topic, id, err)
	}
	if !r.isLeader() {
		return nil, fmt.Errorf("partition %s/%d: %w", topic, id, errNotLeader)
	}
	return &Partition{Topic: topic, ID: id, log: r.log, r: r}, nil
}

// clusterAutoCreate creates a topic through the controller with the default
// partition count and replication factor; losing a race to another broker
// is not an error.
func (s *Server) clusterAutoCreate(topic string) error {
	if err := validTopicName(topic); err != nil {
		return fmt.Errorf("auto-create topic %q: %w", topic, err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, proposalTimeout)
	defer cancel()
	err := s.node.CreateTopic(ctx, topic, s.cfg.DefaultPartitions, -1, nil)
	if err != nil && !errors.Is(err, cluster.ErrTopicExists) {
		return fmt.Errorf("auto-create topic %q: %w", topic, err)
	}
	if err != nil {
		// Created elsewhere and not applied here yet: wait a little for
		// this broker's copy rather than call an existing topic unknown.
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		for {
			w := s.node.Watch()
			if _, ok := s.node.Metadata().Topics[topic]; ok {
				break
			}
			select {
			case <-w:
			case <-wctx.Done():
				return fmt.Errorf("auto-create topic %q: exists but not yet known here: %w", topic, storage.ErrUnknownTopic)
			}
		}
	}
	if err == nil {
		s.logger.Info("auto-created topic", "topic", topic, "partitions", s.cfg.DefaultPartitions)
	}
	// The creating proposal returns once this node applied it; make the
	// local logs now rather than wait for the replica manager's next pass.
	s.replicas.reconcile()
	return nil
}

// brokerAddr splits a broker's advertised Kafka address.
func brokerAddr(b cluster.Broker) (string, int32) {
	host, portStr, err := net.SplitHostPort(b.KafkaAddr)
	if err != nil {
		return b.KafkaAddr, -1
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return host, -1
	}
	return host, int32(port)
}

// clusterMetadata answers Metadata from the Raft metadata.
func (s *Server) clusterMetadata(c *call, req *kmsg.MetadataRequest, resp *kmsg.MetadataResponse) {
	md := s.node.Metadata()
	for _, b := range md.LiveBrokers() {
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID = b.ID
		mb.Host, mb.Port = brokerAddr(b)
		resp.Brokers = append(resp.Brokers, mb)
	}
	resp.ClusterID = strp(s.cfg.ClusterID)
	resp.ControllerID = -1
	if id, ok := s.node.Controller(); ok {
		resp.ControllerID = id
	}
	alive := func(id int32) bool { b, ok := md.Brokers[id]; return ok && b.Alive }
	describe := func(t *cluster.Topic) kmsg.MetadataResponseTopic {
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = strp(t.Name)
		mt.TopicID = clusterTopicID(t)
		mt.IsInternal = t.Name == cluster.OffsetsTopic
		for _, p := range t.Partitions {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition = p.Partition
			mp.Leader = p.Leader
			mp.LeaderEpoch = p.LeaderEpoch
			mp.Replicas = append([]int32(nil), p.Replicas...)
			mp.ISR = append([]int32(nil), p.ISR...)
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
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		names := make([]string, 0, len(md.Topics))
		for n := range md.Topics {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			resp.Topics = append(resp.Topics, describe(md.Topics[n]))
		}
		return
	}
	autoCreate := req.Version < 4 || req.AllowAutoTopicCreation
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.TopicID = rt.TopicID
			mt.ErrorCode = kerr.UnknownTopicID.Code
			c.fail(mt.ErrorCode)
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		name := *rt.Topic
		t, ok := md.Topics[name]
		if !ok && autoCreate && s.cfg.autoCreate() {
			if err := validTopicName(name); err != nil {
				resp.Topics = append(resp.Topics, topicError(c, name, kerr.InvalidTopicException.Code))
				continue
			}
			if err := s.clusterAutoCreate(name); err != nil {
				s.logger.Warn("metadata auto-create failed", "topic", name, "err", err)
				resp.Topics = append(resp.Topics, topicError(c, name, clusterErrorCode(err)))
				continue
			}
			t, ok = s.node.Metadata().Topics[name]
		}
		if !ok {
			resp.Topics = append(resp.Topics, topicError(c, name, kerr.UnknownTopicOrPartition.Code))
			continue
		}
		resp.Topics = append(resp.Topics, describe(t))
	}
}

// clusterCreateTopic creates a topic through the controller. Storage configs
// are checked here (every broker turns them into its log config) and
// min.insync.replicas is kept in the metadata for the leaders.
func (s *Server) clusterCreateTopic(rt kmsg.CreateTopicsRequestTopic, validateOnly bool) (int16, string) {
	if err := validTopicName(rt.Topic); err != nil {
		return kerr.InvalidTopicException.Code, "topic names are 1-249 of [a-zA-Z0-9._-]"
	}
	if len(rt.ReplicaAssignment) > 0 {
		return kerr.InvalidReplicaAssignment.Code, "replicas are placed by the controller"
	}
	n := s.partitionCount(rt)
	if n <= 0 || n > s.cfg.MaxPartitions {
		return kerr.InvalidPartitions.Code, fmt.Sprintf("partitions must be 1-%d", s.cfg.MaxPartitions)
	}
	cfgs := map[string]string{}
	for _, kv := range rt.Configs {
		if kv.Value != nil {
			cfgs[kv.Name] = *kv.Value
		}
	}
	if _, err := clusterTopicConfig(cfgs); err != nil {
		return kerr.InvalidConfig.Code, err.Error()
	}
	if v, ok := cfgs[minISRConfig]; ok {
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 || (rt.ReplicationFactor > 0 && m > int(rt.ReplicationFactor)) {
			return kerr.InvalidConfig.Code, fmt.Sprintf("min.insync.replicas %q: want 1..replication factor", v)
		}
	}
	if _, exists := s.node.Metadata().Topics[rt.Topic]; exists {
		return kerr.TopicAlreadyExists.Code, "topic exists"
	}
	if validateOnly {
		return 0, ""
	}
	if len(cfgs) == 0 {
		cfgs = nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, proposalTimeout)
	defer cancel()
	if err := s.node.CreateTopic(ctx, rt.Topic, n, rt.ReplicationFactor, cfgs); err != nil {
		return clusterErrorCode(err), err.Error()
	}
	s.replicas.reconcile()
	s.logger.Info("created topic", "topic", rt.Topic, "partitions", n, "rf", rt.ReplicationFactor)
	return 0, ""
}

// clusterTopicConfig turns a topic's metadata configs into its log config,
// leaving out the ones the cluster handles.
func clusterTopicConfig(cfgs map[string]string) (storage.LogConfig, error) {
	var kv []kmsg.CreateTopicsRequestTopicConfig
	names := make([]string, 0, len(cfgs))
	for k := range cfgs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == minISRConfig || k == cluster.UncleanLeaderElectionConfig {
			continue
		}
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, strp(cfgs[k])
		kv = append(kv, c)
	}
	return parseTopicConfigs(kv)
}

// clusterCoordinator answers FindCoordinator for one group key.
func (s *Server) clusterCoordinator(key string) (int32, string, int32, int16, *string) {
	ctx, cancel := context.WithTimeout(s.ctx, proposalTimeout)
	defer cancel()
	b, err := s.node.Coordinator(ctx, key)
	if err != nil {
		s.logger.Debug("find coordinator", "group", key, "err", err)
		return -1, "", -1, kerr.CoordinatorNotAvailable.Code, strp(err.Error())
	}
	host, port := brokerAddr(b)
	return b.ID, host, port, 0, nil
}

// ownsGroup reports whether this broker coordinates group: it leads the
// group's partition of the offsets topic.
func (s *Server) ownsGroup(group string) bool {
	part, ok := s.offsetsPartitionOf(group)
	if !ok {
		return false
	}
	r, err := s.replicas.lookup(cluster.OffsetsTopic, part)
	return err == nil && r.coordinates()
}

// notCoordinator answers a group request for a group this broker does not
// coordinate, or returns nil to let the coordinator handle it.
func (s *Server) notCoordinator(req kmsg.Request) kmsg.Response {
	code := kerr.NotCoordinator.Code
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		if !s.ownsGroup(r.Group) {
			resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode = code
			return resp
		}
	case *kmsg.SyncGroupRequest:
		if !s.ownsGroup(r.Group) {
			resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
			resp.ErrorCode = code
			return resp
		}
	case *kmsg.HeartbeatRequest:
		if !s.ownsGroup(r.Group) {
			resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
			resp.ErrorCode = code
			return resp
		}
	case *kmsg.LeaveGroupRequest:
		if !s.ownsGroup(r.Group) {
			resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
			resp.ErrorCode = code
			return resp
		}
	case *kmsg.OffsetDeleteRequest:
		if !s.ownsGroup(r.Group) {
			resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
			resp.ErrorCode = code
			return resp
		}
	case *kmsg.DeleteGroupsRequest:
		for _, g := range r.Groups {
			if !s.ownsGroup(g) {
				// Clients send each coordinator its own groups; one not
				// ours sends them all back to FindCoordinator.
				resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
				for _, g := range r.Groups {
					rg := kmsg.NewDeleteGroupsResponseGroup()
					rg.Group, rg.ErrorCode = g, code
					resp.Groups = append(resp.Groups, rg)
				}
				return resp
			}
		}
	case *kmsg.OffsetCommitRequest:
		if !s.ownsGroup(r.Group) {
			resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
			for _, t := range r.Topics {
				rt := kmsg.NewOffsetCommitResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetCommitResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p.Partition, code
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp
		}
	case *kmsg.OffsetFetchRequest:
		if r.Version < 8 && !s.ownsGroup(r.Group) {
			resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
			resp.ErrorCode = code
			return resp
		}
		if r.Version >= 8 {
			for _, g := range r.Groups {
				if !s.ownsGroup(g.Group) {
					resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
					for _, g := range r.Groups {
						rg := kmsg.NewOffsetFetchResponseGroup()
						rg.Group, rg.ErrorCode = g.Group, code
						resp.Groups = append(resp.Groups, rg)
					}
					return resp
				}
			}
		}
	}
	return nil
}

// clusterTopicID is the topic's id from the metadata (random, chosen at
// creation), or the name-derived one for topics created before ids.
func clusterTopicID(t *cluster.Topic) [16]byte {
	var id [16]byte
	if b, err := hex.DecodeString(t.ID); err == nil && len(b) == len(id) {
		copy(id[:], b)
		return id
	}
	return topicID(t.Name)
}
