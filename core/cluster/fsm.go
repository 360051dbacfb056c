package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// commandVersion is the version of the command encoding. Commands are JSON so a log is readable
// with jq when debugging; the version lets a newer broker refuse (rather than misread) a layout it
// does not know, and lets a later release accept old entries still in the log.
const commandVersion = 1

// Command operations.
const (
	opRegisterBroker   = "register_broker"
	opBrokerDown       = "broker_down"
	opCreateTopic      = "create_topic"
	opDeleteTopic      = "delete_topic"
	opCreatePartitions = "create_partitions"
	opAlterISR         = "alter_isr"
	opAlterConfig      = "alter_config"
	opPutSecurity      = "put_security"
)

// UncleanLeaderElectionConfig is the topic config that allows an out-of-sync replica to become
// leader when no in-sync replica is alive (losing acknowledged data). Off unless set to "true".
const UncleanLeaderElectionConfig = "unclean.leader.election.enable"

type command struct {
	V  int    `json:"v"`
	Op string `json:"op"`

	Broker   *Broker `json:"broker,omitempty"`    // register_broker
	BrokerID int32   `json:"broker_id,omitempty"` // broker_down

	Topic      string            `json:"topic,omitempty"`
	TopicID    string            `json:"topic_id,omitempty"`   // create_topic
	Partitions int32             `json:"partitions,omitempty"` // create_topic; create_partitions: new total
	RF         int16             `json:"rf,omitempty"`
	Config     map[string]string `json:"config,omitempty"`

	// alter_isr: the proposer's view (leader, leader epoch, partition epoch) fences stale leaders.
	Partition      int32   `json:"partition,omitempty"`
	Leader         int32   `json:"leader,omitempty"`
	LeaderEpoch    int32   `json:"leader_epoch,omitempty"`
	PartitionEpoch int32   `json:"partition_epoch,omitempty"`
	ISR            []int32 `json:"isr,omitempty"`

	// put_security: one security document replaced whole.
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

func encodeCommand(c command) ([]byte, error) {
	c.V = commandVersion
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s command: %w", c.Op, err)
	}
	return b, nil
}

// applyResult is what FSM.Apply returns to the proposer.
type applyResult struct {
	Err       *applyError     `json:"err,omitempty"`
	Partition *PartitionState `json:"partition,omitempty"`
}

// FSM is the metadata state machine replicated by Raft. Apply is deterministic: it depends only on
// the current state and the command (no clocks, no map iteration order, no local config), so every
// replica computes the same placement and elections.
type FSM struct {
	logger *slog.Logger

	mu      sync.RWMutex
	state   *Snapshot
	changed chan struct{}

	// onElection is called (under mu) for each partition leader change; used for metrics.
	onElection func(topic string, partition, leader int32)
}

// NewFSM returns an empty metadata state machine.
func NewFSM(logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.Default()
	}
	return &FSM{logger: logger, state: newSnapshot(), changed: make(chan struct{})}
}

var _ raft.FSM = (*FSM)(nil)

// Metadata returns a copy of the current state.
func (f *FSM) Metadata() *Snapshot {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.clone()
}

// Topic returns a copy of one topic, cheaper than Metadata for a lookup.
func (f *FSM) Topic(name string) (*Topic, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.state.Topics[name]
	if !ok {
		return nil, false
	}
	return t.clone(), true
}

// Partitions returns how many partitions the topic has (ok false: no such
// topic), copying nothing.
func (f *FSM) Partitions(name string) (int, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.state.Topics[name]
	if !ok {
		return 0, false
	}
	return len(t.Partitions), true
}

// HasTopic reports whether the topic exists, copying nothing.
func (f *FSM) HasTopic(name string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.state.Topics[name]
	return ok
}

// AppliedIndex is the Raft index of the last applied command.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Index
}

// Watch returns a channel closed at the next state change. Take a new one after each wake-up and
// read Metadata after taking it, so no change falls in between.
func (f *FSM) Watch() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

func (f *FSM) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Apply applies one committed command.
func (f *FSM) Apply(l *raft.Log) any {
	var c command
	var res applyResult
	if err := json.Unmarshal(l.Data, &c); err != nil {
		res.Err = refuse("bad_command", "decode at index %d: %v", l.Index, err)
	} else if c.V != commandVersion {
		res.Err = refuse("bad_command", "version %d at index %d (this broker knows %d)", c.V, l.Index, commandVersion)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if res.Err == nil {
		res = f.applyLocked(c)
	}
	if res.Err != nil && res.Err.Code == "bad_command" {
		f.logger.Error("metadata command refused", "index", l.Index, "err", res.Err)
	}
	f.state.Index = l.Index
	f.notifyLocked()
	return res
}

func (f *FSM) applyLocked(c command) applyResult {
	s := f.state
	switch c.Op {
	case opRegisterBroker:
		if c.Broker == nil || c.Broker.ID < 0 {
			return applyResult{Err: refuse("bad_command", "register without a broker")}
		}
		b := *c.Broker
		b.Alive = true
		s.Brokers[b.ID] = &b
		f.electOffline()
		return applyResult{}
	case opBrokerDown:
		b, ok := s.Brokers[c.BrokerID]
		if !ok {
			return applyResult{Err: refuse("unknown_broker", "%d", c.BrokerID)}
		}
		b.Alive = false
		f.failBroker(c.BrokerID)
		return applyResult{}
	case opCreateTopic:
		return f.createTopic(c)
	case opCreatePartitions:
		return f.createPartitions(c)
	case opDeleteTopic:
		if _, ok := s.Topics[c.Topic]; !ok {
			return applyResult{Err: refuse("unknown_topic", "%q", c.Topic)}
		}
		delete(s.Topics, c.Topic)
		return applyResult{}
	case opAlterISR:
		return f.alterISR(c)
	case opAlterConfig:
		t, ok := s.Topics[c.Topic]
		if !ok {
			return applyResult{Err: refuse("unknown_topic", "%q", c.Topic)}
		}
		t.Config = c.Config // the whole new set: what is absent takes the defaults
		return applyResult{}
	case opPutSecurity:
		if c.Key == "" || !json.Valid(c.Value) {
			return applyResult{Err: refuse("bad_command", "put_security without a key or with invalid JSON")}
		}
		if s.Security == nil {
			s.Security = map[string]json.RawMessage{}
		}
		s.Security[c.Key] = c.Value
		return applyResult{}
	default:
		return applyResult{Err: refuse("bad_command", "unknown op %q", c.Op)}
	}
}

var validTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func (f *FSM) createTopic(c command) applyResult {
	s := f.state
	if !validTopic.MatchString(c.Topic) || c.Topic == "." || c.Topic == ".." {
		return applyResult{Err: refuse("invalid_topic", "%q", c.Topic)}
	}
	if t, ok := s.Topics[c.Topic]; ok {
		if c.TopicID != "" && t.ID == c.TopicID {
			// The same proposal again: its first copy was applied but the
			// answer was lost (a leader change), and propose retried. Every
			// create draws a new id, so this is that create, and it succeeded.
			return applyResult{}
		}
		return applyResult{Err: refuse("topic_exists", "%q", c.Topic)}
	}
	if c.Partitions <= 0 {
		return applyResult{Err: refuse("invalid_partitions", "%d", c.Partitions)}
	}
	live := s.LiveBrokers()
	if c.RF <= 0 || int(c.RF) > len(live) {
		return applyResult{Err: refuse("invalid_rf", "%d with %d live brokers", c.RF, len(live))}
	}
	t := &Topic{Name: c.Topic, ID: c.TopicID, Config: c.Config}
	start := int(s.PlacementCursor % int64(len(live)))
	t.Partitions = place(c.Topic, 0, c.Partitions, int(c.RF), live, start)
	s.PlacementCursor += int64(c.Partitions)
	s.Topics[c.Topic] = t
	return applyResult{}
}

func (f *FSM) createPartitions(c command) applyResult {
	s := f.state
	t, ok := s.Topics[c.Topic]
	if !ok {
		return applyResult{Err: refuse("unknown_topic", "%q", c.Topic)}
	}
	have := int32(len(t.Partitions))
	if c.Partitions <= have {
		return applyResult{Err: refuse("invalid_partitions", "%d is not above the current %d", c.Partitions, have)}
	}
	rf := len(t.Partitions[0].Replicas)
	live := s.LiveBrokers()
	if rf > len(live) {
		return applyResult{Err: refuse("invalid_rf", "%d with %d live brokers", rf, len(live))}
	}
	start := int(s.PlacementCursor % int64(len(live)))
	t.Partitions = append(t.Partitions, place(c.Topic, have, c.Partitions-have, rf, live, start)...)
	s.PlacementCursor += int64(c.Partitions - have)
	return applyResult{}
}

// place assigns count partitions (numbered from first) over the live brokers the way Kafka's
// rack-unaware assignment does: leaders round-robin from start, and the followers of each group of
// len(live) partitions are shifted by one more broker, so followers spread as evenly as leaders.
func place(topic string, first, count int32, rf int, live []Broker, start int) []PartitionState {
	n := len(live)
	out := make([]PartitionState, 0, count)
	for i := 0; i < int(count); i++ {
		lead := (start + i) % n
		replicas := []int32{live[lead].ID}
		shift := 0
		if n > 1 {
			shift = (i / n) % (n - 1)
		}
		for j := 1; j < rf; j++ {
			replicas = append(replicas, live[(lead+1+(shift+j-1)%(n-1))%n].ID)
		}
		out = append(out, PartitionState{
			Topic:     topic,
			Partition: first + int32(i),
			Replicas:  replicas,
			Leader:    replicas[0],
			ISR:       slices.Clone(replicas),
		})
	}
	return out
}

func (f *FSM) alive(id int32) bool {
	b, ok := f.state.Brokers[id]
	return ok && b.Alive
}

func unclean(t *Topic) bool { return t.Config[UncleanLeaderElectionConfig] == "true" }

// electFrom picks the new leader: the first replica (preference order) that is alive and in the
// ISR; with unclean election allowed, else the first alive replica. NoLeader when none qualifies.
func (f *FSM) electFrom(t *Topic, p *PartitionState) (leader int32, uncleanPick bool) {
	for _, r := range p.Replicas {
		if slices.Contains(p.ISR, r) && f.alive(r) {
			return r, false
		}
	}
	if unclean(t) {
		for _, r := range p.Replicas {
			if f.alive(r) {
				return r, true
			}
		}
	}
	return NoLeader, false
}

func (f *FSM) setLeader(t *Topic, p *PartitionState, leader int32, uncleanPick bool) {
	if uncleanPick {
		f.logger.Warn("unclean leader election", "topic", t.Name, "partition", p.Partition, "leader", leader)
		p.ISR = []int32{leader}
	}
	p.Leader = leader
	p.LeaderEpoch++
	p.PartitionEpoch++
	if f.onElection != nil {
		f.onElection(t.Name, p.Partition, leader)
	}
}

// failBroker takes a dead broker out of every ISR (unless it is the last member, which stays so a
// clean election can wait for it) and moves leadership of its partitions.
func (f *FSM) failBroker(id int32) {
	for _, name := range f.state.sortedTopicNames() {
		t := f.state.Topics[name]
		for i := range t.Partitions {
			p := &t.Partitions[i]
			inISR := slices.Contains(p.ISR, id)
			if inISR && len(p.ISR) > 1 {
				p.ISR = slices.DeleteFunc(p.ISR, func(r int32) bool { return r == id })
				p.PartitionEpoch++
			}
			if p.Leader == id {
				leader, u := f.electFrom(t, p)
				f.setLeader(t, p, leader, u)
			}
		}
	}
}

// electOffline gives offline partitions a leader again when an eligible replica is alive, e.g.
// the last in-sync replica coming back after every replica was down.
func (f *FSM) electOffline() {
	for _, name := range f.state.sortedTopicNames() {
		t := f.state.Topics[name]
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if p.Leader != NoLeader {
				continue
			}
			if leader, u := f.electFrom(t, p); leader != NoLeader {
				f.setLeader(t, p, leader, u)
			}
		}
	}
}

func (f *FSM) alterISR(c command) applyResult {
	t, ok := f.state.Topics[c.Topic]
	if !ok || c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
		return applyResult{Err: refuse("unknown_topic", "%s/%d", c.Topic, c.Partition)}
	}
	p := &t.Partitions[c.Partition]
	if p.Leader == c.Leader && p.LeaderEpoch == c.LeaderEpoch && p.PartitionEpoch == c.PartitionEpoch+1 &&
		sameMembers(p.ISR, c.ISR) {
		// A retry of a change that was applied (the proposer lost track of the first attempt
		// when Raft leadership moved): answer as the first attempt did.
		out := p.clone()
		return applyResult{Partition: &out}
	}
	if p.Leader != c.Leader || p.LeaderEpoch != c.LeaderEpoch || p.PartitionEpoch != c.PartitionEpoch {
		return applyResult{Err: refuse("stale_leader_epoch",
			"%s/%d proposal from leader %d epoch %d/%d, current leader %d epoch %d/%d",
			c.Topic, c.Partition, c.Leader, c.LeaderEpoch, c.PartitionEpoch, p.Leader, p.LeaderEpoch, p.PartitionEpoch)}
	}
	if !slices.Contains(c.ISR, p.Leader) {
		return applyResult{Err: refuse("invalid_isr", "%v does not contain the leader %d", c.ISR, p.Leader)}
	}
	// Normalise to replica order so equal sets compare equal.
	var isr []int32
	for _, r := range p.Replicas {
		if !slices.Contains(c.ISR, r) {
			continue
		}
		if !slices.Contains(p.ISR, r) && !f.alive(r) {
			return applyResult{Err: refuse("invalid_isr", "cannot add dead broker %d", r)}
		}
		isr = append(isr, r)
	}
	for _, r := range c.ISR {
		if !slices.Contains(p.Replicas, r) {
			return applyResult{Err: refuse("invalid_isr", "%d is not a replica of %s/%d", r, c.Topic, c.Partition)}
		}
	}
	if len(isr) != len(c.ISR) {
		return applyResult{Err: refuse("invalid_isr", "%v has duplicates", c.ISR)}
	}
	p.ISR = isr
	p.PartitionEpoch++
	out := p.clone()
	return applyResult{Partition: &out}
}

func sameMembers(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

// snapshotVersion is the version of the snapshot file layout.
const snapshotVersion = 1

type snapshotFile struct {
	V     int       `json:"v"`
	State *Snapshot `json:"state"`
}

// Snapshot captures the state for Raft; Persist runs later, concurrently with Apply, so it works on
// a copy.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{state: f.Metadata()}, nil
}

// Restore replaces the state with a snapshot written by Persist.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var sf snapshotFile
	if err := json.NewDecoder(rc).Decode(&sf); err != nil {
		return fmt.Errorf("restore metadata snapshot: %w", err)
	}
	if sf.V != snapshotVersion || sf.State == nil {
		return fmt.Errorf("restore metadata snapshot: version %d (this broker knows %d)", sf.V, snapshotVersion)
	}
	if sf.State.Brokers == nil {
		sf.State.Brokers = map[int32]*Broker{}
	}
	if sf.State.Topics == nil {
		sf.State.Topics = map[string]*Topic{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = sf.State
	f.notifyLocked()
	return nil
}

type fsmSnapshot struct{ state *Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(snapshotFile{V: snapshotVersion, State: s.state}); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist metadata snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist metadata snapshot: close: %w", err)
	}
	return nil
}

func (s *fsmSnapshot) Release() {}
