package cluster

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
)

// NoLeader is the leader id of a partition that has no live in-sync replica (offline).
const NoLeader int32 = -1

// OffsetsTopic is the internal topic whose partition leaders are the consumer-group coordinators,
// as in Kafka: group g is coordinated by the leader of partition hash(g) mod its partition count.
const OffsetsTopic = "__consumer_offsets"

// Broker is one registered broker. Alive follows Serf: the Raft leader marks a broker dead when
// Serf reports it failed or left, and alive again when it rejoins.
type Broker struct {
	ID        int32  `json:"id"`
	KafkaAddr string `json:"kafka_addr"`
	RaftAddr  string `json:"raft_addr"`
	RPCAddr   string `json:"rpc_addr"`
	Alive     bool   `json:"alive"`
}

// PartitionState is the replicated state of one partition.
type PartitionState struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Replicas is the assignment in preference order; Replicas[0] is the preferred leader.
	Replicas []int32 `json:"replicas"`
	// Leader is NoLeader while no in-sync replica is alive.
	Leader int32 `json:"leader"`
	// LeaderEpoch is bumped on every leader change, including to NoLeader; replicas use it to fence
	// stale leaders and to truncate divergent tails.
	LeaderEpoch int32 `json:"leader_epoch"`
	// ISR is the in-sync replica set. It is never emptied: when the last in-sync replica dies it
	// stays listed (as Kafka does) so that, with unclean election off, only it may lead again.
	ISR []int32 `json:"isr"`
	// PartitionEpoch is bumped on every change (leader or ISR) so an ISR proposal based on a stale
	// view can be refused.
	PartitionEpoch int32 `json:"partition_epoch"`
}

func (p PartitionState) clone() PartitionState {
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = slices.Clone(p.ISR)
	return p
}

// Topic is a topic's configuration and partitions (index = partition number).
type Topic struct {
	Name string `json:"name"`
	// ID is chosen by the proposer at creation (32 hex digits, random), so
	// a topic deleted and created again under the same name is another
	// topic: a broker that missed the change drops its old data instead of
	// serving it as the new topic's. Empty for topics created before ids.
	ID         string            `json:"id,omitempty"`
	Config     map[string]string `json:"config,omitempty"`
	Partitions []PartitionState  `json:"partitions"`
}

func (t *Topic) clone() *Topic {
	c := &Topic{Name: t.Name, ID: t.ID, Config: maps.Clone(t.Config), Partitions: make([]PartitionState, len(t.Partitions))}
	for i, p := range t.Partitions {
		c.Partitions[i] = p.clone()
	}
	return c
}

// Snapshot is a point-in-time copy of the cluster metadata; callers own it and may keep it.
type Snapshot struct {
	// Index is the Raft index of the last command applied to this copy.
	Index   uint64            `json:"index"`
	Brokers map[int32]*Broker `json:"brokers"`
	Topics  map[string]*Topic `json:"topics"`
	// PlacementCursor rotates the first broker of each new topic so single-partition topics do not
	// all land on the lowest broker id.
	PlacementCursor int64 `json:"placement_cursor"`
	// Security holds the brokers' security state (SCRAM credentials,
	// ACLs) as opaque JSON documents by key; the cluster only replicates
	// them, core/server interprets them.
	Security map[string]json.RawMessage `json:"security,omitempty"`
}

func newSnapshot() *Snapshot {
	return &Snapshot{Brokers: map[int32]*Broker{}, Topics: map[string]*Topic{}}
}

func (s *Snapshot) clone() *Snapshot {
	c := &Snapshot{
		Index:           s.Index,
		Brokers:         make(map[int32]*Broker, len(s.Brokers)),
		Topics:          make(map[string]*Topic, len(s.Topics)),
		PlacementCursor: s.PlacementCursor,
		Security:        maps.Clone(s.Security), // values are replaced, never modified
	}
	for id, b := range s.Brokers {
		bc := *b
		c.Brokers[id] = &bc
	}
	for n, t := range s.Topics {
		c.Topics[n] = t.clone()
	}
	return c
}

// LiveBrokers returns the alive brokers sorted by id.
func (s *Snapshot) LiveBrokers() []Broker {
	var out []Broker
	for _, b := range s.Brokers {
		if b.Alive {
			out = append(out, *b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Partition returns a partition's state.
func (s *Snapshot) Partition(topic string, partition int32) (PartitionState, bool) {
	t, ok := s.Topics[topic]
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return PartitionState{}, false
	}
	return t.Partitions[partition].clone(), true
}

// ReplicasOf returns the partitions broker id holds a replica of (as leader or follower), sorted
// by topic and partition: what a broker must host and, where it is not the leader, fetch.
func (s *Snapshot) ReplicasOf(id int32) []PartitionState {
	var out []PartitionState
	for _, name := range s.sortedTopicNames() {
		for _, p := range s.Topics[name].Partitions {
			if slices.Contains(p.Replicas, id) {
				out = append(out, p.clone())
			}
		}
	}
	return out
}

// LeaderCounts returns how many partitions each broker leads (offline partitions are not counted).
func (s *Snapshot) LeaderCounts() map[int32]int {
	out := map[int32]int{}
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if p.Leader != NoLeader {
				out[p.Leader]++
			}
		}
	}
	return out
}

// CoordinatorPartition is the offsets-topic partition that coordinates group (Kafka's
// abs(hashCode) mod partitions, with Java's String.hashCode so placement matches Kafka's for
// the same partition count).
func CoordinatorPartition(group string, partitions int) int32 {
	if partitions <= 0 {
		return 0
	}
	var h int32
	for _, r := range group {
		// Java hashes UTF-16 code units; for runes beyond the BMP that differs, which only
		// changes placement, never correctness.
		h = 31*h + int32(r)
	}
	if h < 0 {
		if h == -h { // MinInt32: Kafka's Utils.abs maps it to 0
			h = 0
		} else {
			h = -h
		}
	}
	return h % int32(partitions)
}

// sortedTopicNames gives a deterministic iteration order: Apply must do the same thing on every
// replica, and Go's map order is random.
func (s *Snapshot) sortedTopicNames() []string {
	names := make([]string, 0, len(s.Topics))
	for n := range s.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
