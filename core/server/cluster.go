package server

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/storage"
)

// The broker's cluster: membership and metadata come from a cluster.Service,
// a Raft-backed cluster.Node when Config.Cluster is set, else a cluster of
// one (cluster.Local) with the same state machine. Either way the replica
// manager (replica.go) follows the metadata and runs the leader and follower
// sides of replication; handlers do not know which one they run on.

// Topic configs the cluster handles itself rather than storage.
const (
	minISRConfig = "min.insync.replicas"
)

// localMetadataKey is where a single broker keeps its cluster-of-one
// metadata in meta.db.
const localMetadataKey = "cluster/local-metadata"

// startCluster joins the cluster (or forms the cluster of one) once the
// Kafka listener is bound: its advertised address is what other brokers
// publish to clients.
func (s *Server) startCluster() error {
	var cc cluster.Config
	if s.cfg.Cluster != nil {
		cc = *s.cfg.Cluster
	}
	cc.BrokerID = s.cfg.NodeID
	cc.KafkaAddr = s.AdvertisedAddr()
	if cc.Registerer == nil {
		cc.Registerer = s.m.reg
	}
	if s.cfg.Cluster == nil {
		local, err := s.openLocalCluster(cc)
		if err != nil {
			return err
		}
		s.cluster = local
	} else {
		if cc.DataDir == "" {
			cc.DataDir = filepath.Join(s.cfg.DataDir, "cluster")
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
		s.cluster = node
	}
	s.replicas = newReplicaManager(s)
	// A cluster of one is current at once: host the partitions before the
	// first connection is accepted rather than answer NOT_LEADER briefly.
	s.replicas.catchUp()
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

// Cluster is the broker's cluster membership and metadata.
func (s *Server) Cluster() cluster.Service { return s.cluster }

// brokerEndpoint is where a client on c reaches broker b: this broker as
// the client's listener advertises it, others at their advertised address.
func (s *Server) brokerEndpoint(c *call, b cluster.Broker) (string, int32) {
	if b.ID == s.cfg.NodeID {
		return s.advertisedHost(c), s.advertisedPort(c)
	}
	return brokerAddr(b)
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

// createTopic creates a topic through the controller. Storage configs are
// checked here (every broker turns them into its log config) and
// min.insync.replicas is kept in the metadata for the leaders.
func (s *Server) createTopic(rt kmsg.CreateTopicsRequestTopic, validateOnly bool) (int16, string) {
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
	if _, err := topicLogConfig(cfgs); err != nil {
		return kerr.InvalidConfig.Code, err.Error()
	}
	if v, ok := cfgs[minISRConfig]; ok {
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 || (rt.ReplicationFactor > 0 && m > int(rt.ReplicationFactor)) {
			return kerr.InvalidConfig.Code, fmt.Sprintf("min.insync.replicas %q: want 1..replication factor", v)
		}
	}
	if s.cluster.HasTopic(rt.Topic) {
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
	if err := s.cluster.CreateTopic(ctx, rt.Topic, n, rt.ReplicationFactor, cfgs); err != nil {
		return errorCode(err), err.Error()
	}
	s.replicas.reconcile()
	s.logger.Info("created topic", "topic", rt.Topic, "partitions", n, "rf", rt.ReplicationFactor)
	return 0, ""
}

// topicLogConfig turns a topic's metadata configs into its log config,
// leaving out the ones the cluster handles.
func topicLogConfig(cfgs map[string]string) (storage.LogConfig, error) {
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

// coordinator answers FindCoordinator for one group key.
func (s *Server) coordinator(c *call, key string) (int32, string, int32, int16, *string) {
	ctx, cancel := context.WithTimeout(s.ctx, proposalTimeout)
	defer cancel()
	b, err := s.cluster.Coordinator(ctx, key)
	if err != nil {
		s.logger.Debug("find coordinator", "group", key, "err", err)
		return -1, "", -1, kerr.CoordinatorNotAvailable.Code, strp(err.Error())
	}
	host, port := s.brokerEndpoint(c, b)
	return b.ID, host, port, 0, nil
}

// notCoordinator answers a group request for a group this broker does not
// coordinate, or returns nil to let the coordinator handle it.
func (s *Server) notCoordinator(req kmsg.Request) kmsg.Response {
	code := kerr.NotCoordinator.Code
	var group string
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		group = r.Group
	case *kmsg.SyncGroupRequest:
		group = r.Group
	case *kmsg.HeartbeatRequest:
		group = r.Group
	case *kmsg.LeaveGroupRequest:
		group = r.Group
	case *kmsg.OffsetDeleteRequest:
		group = r.Group
	case *kmsg.DeleteGroupsRequest:
		if slices.ContainsFunc(r.Groups, func(g string) bool { return !s.coordinates(g) }) {
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
		return nil
	case *kmsg.OffsetCommitRequest:
		if !s.coordinates(r.Group) {
			resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
			addDeniedCommits(nil, resp, r.Topics, code)
			return resp
		}
		return nil
	case *kmsg.OffsetFetchRequest:
		if r.Version < 8 {
			group = r.Group
			break
		}
		if slices.ContainsFunc(r.Groups, func(g kmsg.OffsetFetchRequestGroup) bool { return !s.coordinates(g.Group) }) {
			resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
			for _, g := range r.Groups {
				rg := kmsg.NewOffsetFetchResponseGroup()
				rg.Group, rg.ErrorCode = g.Group, code
				resp.Groups = append(resp.Groups, rg)
			}
			return resp
		}
		return nil
	default:
		return nil
	}
	if s.coordinates(group) {
		return nil
	}
	return withErrorCode(req, code)
}

// topicIDOf is the topic's id from the metadata (random, chosen at
// creation), or the name-derived one for topics created before ids.
func topicIDOf(t *cluster.Topic) [16]byte {
	var id [16]byte
	if b, err := hex.DecodeString(t.ID); err == nil && len(b) == len(id) {
		copy(id[:], b)
		return id
	}
	return topicID(t.Name)
}
