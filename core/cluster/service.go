package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// Service is what a broker asks of its cluster: the metadata (topics, partitions with their
// leader, leader epoch, replicas and ISR, brokers, controller), changes to it, and group
// coordinator placement. Node implements it over Serf and Raft; Local is a cluster of one,
// applying the same commands to the same state machine in process. Handlers are written once
// against Service, so a single broker runs exactly the code a cluster member runs.
type Service interface {
	// ID is this broker's id.
	ID() int32
	// Metadata returns a copy of the local metadata.
	Metadata() *Snapshot
	// Topic returns a copy of one topic; HasTopic only says whether it exists. Both are
	// cheaper than Metadata on request paths.
	Topic(name string) (*Topic, bool)
	HasTopic(name string) bool
	// Partitions is the topic's partition count, copying nothing (the hot
	// path of every group and transaction request asks it of the offsets
	// topic).
	Partitions(name string) (int, bool)
	// Watch returns a channel closed at the next metadata change.
	Watch() <-chan struct{}
	// PartitionState returns the local view of one partition.
	PartitionState(topic string, partition int32) (PartitionState, bool)
	// MetadataCurrent reports whether the local copy has caught up with the cluster's, so that
	// this broker may act on it (lead partitions, delete logs).
	MetadataCurrent() bool
	// Controller returns the broker id of the controller, if one is known.
	Controller() (int32, bool)

	CreateTopic(ctx context.Context, name string, partitions int32, rf int16, config map[string]string) error
	CreatePartitions(ctx context.Context, name string, total int32) error
	AlterTopicConfig(ctx context.Context, name string, config map[string]string) error
	DeleteTopic(ctx context.Context, name string) error
	ProposeISR(ctx context.Context, cur PartitionState, isr []int32) (PartitionState, error)
	PutSecurity(ctx context.Context, key string, value []byte) error
	Coordinator(ctx context.Context, group string) (Broker, error)

	// Leave is a controlled shutdown (leadership moves first); Close stops at once.
	Leave(ctx context.Context) error
	Close() error
}

var (
	_ Service = (*Node)(nil)
	_ Service = (*Local)(nil)
)

// proposals turns the Service's changes into commands and reads the local state machine; Node
// and Local differ only in how a command reaches the state machine (propose).
type proposals struct {
	cfg     Config
	fsm     *FSM
	propose func(ctx context.Context, c command) (applyResult, error)
}

// Metadata returns a copy of the local metadata (as of the last applied command).
func (n *proposals) Metadata() *Snapshot { return n.fsm.Metadata() }

// Topic returns a copy of one topic.
func (n *proposals) Topic(name string) (*Topic, bool) { return n.fsm.Topic(name) }

// HasTopic reports whether the topic exists.
func (n *proposals) HasTopic(name string) bool { return n.fsm.HasTopic(name) }

// Partitions is the topic's partition count.
func (n *proposals) Partitions(name string) (int, bool) { return n.fsm.Partitions(name) }

// Watch returns a channel closed at the next metadata change (see FSM.Watch).
func (n *proposals) Watch() <-chan struct{} { return n.fsm.Watch() }

// PartitionState returns the local view of one partition.
func (n *proposals) PartitionState(topic string, partition int32) (PartitionState, bool) {
	return n.fsm.Metadata().Partition(topic, partition)
}

// newTopicID is a random topic id (32 hex digits).
func newTopicID() (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("topic id: %w", err)
	}
	return hex.EncodeToString(id[:]), nil
}

// CreateTopic creates a topic, placing replicas over the live brokers. rf ≤ 0 means the default
// replication factor, capped at the live broker count.
func (n *proposals) CreateTopic(ctx context.Context, name string, partitions int32, rf int16, config map[string]string) error {
	if rf <= 0 {
		rf = n.cfg.DefaultReplicationFactor
		if live := int16(len(n.fsm.Metadata().LiveBrokers())); live > 0 && rf > live {
			rf = live
		}
	}
	cfg := map[string]string{}
	for k, v := range config {
		cfg[k] = v
	}
	if _, set := cfg[UncleanLeaderElectionConfig]; !set && n.cfg.UncleanLeaderElection {
		cfg[UncleanLeaderElectionConfig] = "true"
	}
	if len(cfg) == 0 {
		cfg = nil
	}
	id, err := newTopicID()
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	_, err = n.propose(ctx, command{Op: opCreateTopic, Topic: name, TopicID: id, Partitions: partitions, RF: rf, Config: cfg})
	return err
}

// PutSecurity replicates one security document (credentials, ACLs) to
// every broker, replacing the previous one under key.
func (n *proposals) PutSecurity(ctx context.Context, key string, value []byte) error {
	_, err := n.propose(ctx, command{Op: opPutSecurity, Key: key, Value: value})
	return err
}

// CreatePartitions raises a topic's partition count to total.
func (n *proposals) CreatePartitions(ctx context.Context, name string, total int32) error {
	_, err := n.propose(ctx, command{Op: opCreatePartitions, Topic: name, Partitions: total})
	if errors.Is(err, ErrInvalidPartitions) {
		// propose may have retried a command whose first copy was applied
		// (its answer lost to a leader change): the topic then already has
		// the count asked for, which is what the caller wanted.
		if t := n.fsm.Metadata().Topics[name]; t != nil && int32(len(t.Partitions)) == total {
			return nil
		}
	}
	return err
}

// AlterTopicConfig replaces a topic's configs (keys absent take the defaults); every broker
// applies them to its replicas when it sees the change.
func (n *proposals) AlterTopicConfig(ctx context.Context, name string, config map[string]string) error {
	_, err := n.propose(ctx, command{Op: opAlterConfig, Topic: name, Config: config})
	return err
}

// DeleteTopic removes a topic from the metadata (replicas delete their logs when they see it go).
func (n *proposals) DeleteTopic(ctx context.Context, name string) error {
	before := n.fsm.Metadata().Topics[name]
	_, err := n.propose(ctx, command{Op: opDeleteTopic, Topic: name})
	if errors.Is(err, ErrUnknownTopic) && before != nil {
		// The topic existed when asked and is gone now: this delete (a
		// first copy whose answer a leader change lost, then retried) or
		// a concurrent one removed it; either way it is deleted.
		if t := n.fsm.Metadata().Topics[name]; t == nil || t.ID != before.ID {
			return nil
		}
	}
	return err
}

// ProposeISR is the partition leader's request to change the ISR (shrink a lagging follower, or
// expand one that caught up). cur is the leader's current view of the partition: the change is
// refused with ErrStaleLeaderEpoch if the leader, leader epoch or partition epoch moved on.
func (n *proposals) ProposeISR(ctx context.Context, cur PartitionState, isr []int32) (PartitionState, error) {
	res, err := n.propose(ctx, command{Op: opAlterISR, Topic: cur.Topic, Partition: cur.Partition,
		Leader: cur.Leader, LeaderEpoch: cur.LeaderEpoch, PartitionEpoch: cur.PartitionEpoch, ISR: isr})
	if err != nil {
		return PartitionState{}, err
	}
	if res.Partition == nil {
		return PartitionState{}, fmt.Errorf("propose isr: no partition in the result")
	}
	return *res.Partition, nil
}

// ErrCoordinatorNotAvailable means the group's coordinator partition has no leader right now.
var ErrCoordinatorNotAvailable = errors.New("group coordinator not available")

// Coordinator returns the broker coordinating group: the leader of the group's partition of the
// offsets topic, which is created on first use (as Kafka does).
func (n *proposals) Coordinator(ctx context.Context, group string) (Broker, error) {
	md := n.fsm.Metadata()
	t, ok := md.Topics[OffsetsTopic]
	if !ok {
		// Like Kafka, wait for enough brokers rather than create the offsets topic under-replicated
		// for good because the first group arrived while the cluster was still forming; a cluster
		// expected to be smaller (BootstrapExpect) gets that many replicas.
		rf := min(n.cfg.OffsetsReplicationFactor, int16(max(n.cfg.BootstrapExpect, 1)))
		if live := int16(len(md.LiveBrokers())); live < rf {
			return Broker{}, fmt.Errorf("coordinator for %q: %d live brokers, offsets topic needs %d: %w",
				group, live, rf, ErrCoordinatorNotAvailable)
		}
		err := n.CreateTopic(ctx, OffsetsTopic, n.cfg.OffsetsPartitions, rf, map[string]string{"cleanup.policy": "compact"})
		if err != nil && !errors.Is(err, ErrTopicExists) {
			return Broker{}, fmt.Errorf("coordinator for %q: create offsets topic: %w", group, err)
		}
		md = n.fsm.Metadata()
		if t, ok = md.Topics[OffsetsTopic]; !ok {
			return Broker{}, fmt.Errorf("coordinator for %q: %w", group, ErrCoordinatorNotAvailable)
		}
	}
	p := t.Partitions[CoordinatorPartition(group, len(t.Partitions))]
	b, ok := md.Brokers[p.Leader]
	if p.Leader == NoLeader || !ok || !b.Alive {
		return Broker{}, fmt.Errorf("coordinator for %q: partition %d: %w", group, p.Partition, ErrCoordinatorNotAvailable)
	}
	return *b, nil
}
