package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

type fsmHarness struct {
	t     *testing.T
	f     *FSM
	index uint64
}

func newFSMHarness(t *testing.T, brokers ...int32) *fsmHarness {
	h := &fsmHarness{t: t, f: NewFSM(slog.New(slog.DiscardHandler))}
	for _, id := range brokers {
		h.must(command{Op: opRegisterBroker, Broker: &Broker{ID: id, KafkaAddr: "k", RaftAddr: "r"}})
	}
	return h
}

func (h *fsmHarness) apply(c command) applyResult {
	h.t.Helper()
	b, err := encodeCommand(c)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	return h.f.Apply(&raft.Log{Index: h.index, Data: b}).(applyResult)
}

func (h *fsmHarness) must(c command) applyResult {
	h.t.Helper()
	res := h.apply(c)
	if res.Err != nil {
		h.t.Fatalf("%s: %v", c.Op, res.Err)
	}
	return res
}

func (h *fsmHarness) refused(c command, want error) {
	h.t.Helper()
	res := h.apply(c)
	if res.Err == nil || !errors.Is(res.Err, want) {
		h.t.Fatalf("%s: got %v, want %v", c.Op, res.Err, want)
	}
}

func (h *fsmHarness) part(topic string, p int32) PartitionState {
	h.t.Helper()
	ps, ok := h.f.Metadata().Partition(topic, p)
	if !ok {
		h.t.Fatalf("no partition %s/%d", topic, p)
	}
	return ps
}

func TestPlacementSpreadsLeadersAndReplicas(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		brokers        []int32
		partitions     int32
		rf             int16
		leadersEach    int
		replicasEach   int
		firstFollowers int // how many distinct brokers appear as first follower of a given leader
	}{
		{[]int32{1, 2, 3}, 6, 3, 2, 6, 2},
		{[]int32{1, 2, 3, 4}, 12, 2, 3, 6, 3},
		{[]int32{7, 3, 5, 9, 11}, 10, 3, 2, 6, 2},
	} {
		h := newFSMHarness(t, tc.brokers...)
		h.must(command{Op: opCreateTopic, Topic: "t", Partitions: tc.partitions, RF: tc.rf})
		md := h.f.Metadata()
		leaders, replicas := map[int32]int{}, map[int32]int{}
		followersOf := map[int32]map[int32]bool{}
		for _, p := range md.Topics["t"].Partitions {
			if len(p.Replicas) != int(tc.rf) || p.Leader != p.Replicas[0] || !reflect.DeepEqual(p.ISR, p.Replicas) {
				t.Fatalf("partition %+v", p)
			}
			seen := map[int32]bool{}
			for _, r := range p.Replicas {
				if seen[r] {
					t.Fatalf("duplicate replica in %v", p.Replicas)
				}
				seen[r] = true
				replicas[r]++
			}
			leaders[p.Leader]++
			if followersOf[p.Leader] == nil {
				followersOf[p.Leader] = map[int32]bool{}
			}
			followersOf[p.Leader][p.Replicas[1]] = true
		}
		for _, b := range tc.brokers {
			if leaders[b] != tc.leadersEach || replicas[b] != tc.replicasEach {
				t.Fatalf("brokers %v: leaders %v replicas %v", tc.brokers, leaders, replicas)
			}
			if len(followersOf[b]) != tc.firstFollowers {
				t.Fatalf("brokers %v: first followers of %d = %v", tc.brokers, b, followersOf[b])
			}
		}
	}
}

func TestPlacementRotatesAcrossTopics(t *testing.T) {
	t.Parallel()
	h := newFSMHarness(t, 1, 2, 3)
	for _, name := range []string{"a", "b", "c"} {
		h.must(command{Op: opCreateTopic, Topic: name, Partitions: 1, RF: 1})
	}
	counts := h.f.Metadata().LeaderCounts()
	if counts[1] != 1 || counts[2] != 1 || counts[3] != 1 {
		t.Fatalf("single-partition topics all on one broker: %v", counts)
	}
}

func TestCreateTopicRefusals(t *testing.T) {
	t.Parallel()
	h := newFSMHarness(t, 1, 2)
	h.must(command{Op: opCreateTopic, Topic: "t", Partitions: 1, RF: 2})
	h.refused(command{Op: opCreateTopic, Topic: "t", Partitions: 1, RF: 1}, ErrTopicExists)
	// A create applied twice (propose retried after a leader change lost
	// the first answer) carries the same topic id: the retry succeeds and
	// changes nothing; another create of the name is still refused.
	h.must(command{Op: opCreateTopic, Topic: "v", TopicID: "id-v", Partitions: 1, RF: 1})
	h.must(command{Op: opCreateTopic, Topic: "v", TopicID: "id-v", Partitions: 1, RF: 1})
	if v := h.f.Metadata().Topics["v"]; v == nil || v.ID != "id-v" || len(v.Partitions) != 1 {
		t.Fatalf("topic v after a repeated create: %+v", v)
	}
	h.refused(command{Op: opCreateTopic, Topic: "v", TopicID: "id-w", Partitions: 1, RF: 1}, ErrTopicExists)
	h.must(command{Op: opDeleteTopic, Topic: "v"})
	h.refused(command{Op: opCreateTopic, Topic: "u", Partitions: 1, RF: 3}, ErrInvalidReplicationFactor)
	h.refused(command{Op: opCreateTopic, Topic: "u", Partitions: 0, RF: 1}, ErrInvalidPartitions)
	h.refused(command{Op: opCreateTopic, Topic: "bad/name", Partitions: 1, RF: 1}, ErrInvalidTopic)
	h.refused(command{Op: opDeleteTopic, Topic: "nope"}, ErrUnknownTopic)
	h.refused(command{Op: opBrokerDown, BrokerID: 42}, ErrUnknownBroker)
	h.refused(command{Op: "frobnicate"}, ErrBadCommand)

	// A command from a future encoding is refused, not misread.
	h.index++
	res := h.f.Apply(&raft.Log{Index: h.index, Data: []byte(`{"v":2,"op":"delete_topic","topic":"t"}`)}).(applyResult)
	if !errors.Is(res.Err, ErrBadCommand) {
		t.Fatalf("v2 command: %v", res.Err)
	}
	if _, ok := h.f.Metadata().Topics["t"]; !ok {
		t.Fatal("v2 command was applied")
	}

	h.must(command{Op: opCreatePartitions, Topic: "t", Partitions: 3})
	if n := len(h.f.Metadata().Topics["t"].Partitions); n != 3 {
		t.Fatalf("partitions after create_partitions = %d", n)
	}
	h.refused(command{Op: opCreatePartitions, Topic: "t", Partitions: 2}, ErrInvalidPartitions)
	h.must(command{Op: opDeleteTopic, Topic: "t"})
	if len(h.f.Metadata().Topics) != 0 {
		t.Fatal("topic not deleted")
	}
}

func TestBrokerFailureMovesLeadershipWithinISR(t *testing.T) {
	t.Parallel()
	h := newFSMHarness(t, 1, 2, 3)
	h.must(command{Op: opCreateTopic, Topic: "t", Partitions: 6, RF: 3})
	before := h.f.Metadata()
	h.must(command{Op: opBrokerDown, BrokerID: 2})
	after := h.f.Metadata()
	if after.Brokers[2].Alive {
		t.Fatal("broker 2 still alive")
	}
	for i, p := range after.Topics["t"].Partitions {
		old := before.Topics["t"].Partitions[i]
		for _, r := range p.ISR {
			if r == 2 {
				t.Fatalf("partition %d: dead broker still in ISR %v", i, p.ISR)
			}
		}
		if old.Leader == 2 {
			if p.Leader == 2 || p.Leader == NoLeader || p.LeaderEpoch != old.LeaderEpoch+1 {
				t.Fatalf("partition %d: leader %d epoch %d (was %d epoch %d)", i, p.Leader, p.LeaderEpoch, old.Leader, old.LeaderEpoch)
			}
			// The new leader is the next in preference order among the survivors.
			if want := old.Replicas[1]; p.Leader != want {
				t.Fatalf("partition %d: leader %d, want %d", i, p.Leader, want)
			}
		} else if p.Leader != old.Leader || p.LeaderEpoch != old.LeaderEpoch {
			t.Fatalf("partition %d: leader changed without cause: %+v -> %+v", i, old, p)
		}
		if p.PartitionEpoch <= old.PartitionEpoch {
			t.Fatalf("partition %d: partition epoch not bumped", i)
		}
	}
	if got := after.ReplicasOf(2); len(got) != 6 || got[0].Partition != 0 || got[5].Partition != 5 {
		t.Fatalf("ReplicasOf(2) = %+v", got)
	}
	if got := after.ReplicasOf(9); len(got) != 0 {
		t.Fatalf("ReplicasOf(9) = %+v", got)
	}
	// Coming back does not put it back into ISRs (the leader does that after catch-up), nor take
	// leadership away from the new leaders.
	h.must(command{Op: opRegisterBroker, Broker: &Broker{ID: 2}})
	for i, p := range h.f.Metadata().Topics["t"].Partitions {
		if p.Leader == 2 || len(p.ISR) != 2 {
			t.Fatalf("partition %d after rejoin: %+v", i, p)
		}
	}
}

// leaderDiesAlone creates topic "t" (one partition, two replicas, config
// cfg); its leader drops the follower from the ISR (it lagged), then dies.
// It returns the two replicas.
func (h *fsmHarness) leaderDiesAlone(cfg map[string]string) (lead, follower int32) {
	h.t.Helper()
	h.must(command{Op: opCreateTopic, Topic: "t", Partitions: 1, RF: 2, Config: cfg})
	p := h.part("t", 0)
	lead, follower = p.Replicas[0], p.Replicas[1]
	h.must(command{Op: opAlterISR, Topic: "t", Partition: 0, Leader: lead, LeaderEpoch: p.LeaderEpoch,
		PartitionEpoch: p.PartitionEpoch, ISR: []int32{lead}})
	h.must(command{Op: opBrokerDown, BrokerID: lead})
	return lead, follower
}

func TestOfflinePartitionWaitsForLastISRMember(t *testing.T) {
	t.Parallel()
	h := newFSMHarness(t, 1, 2)
	// With unclean election off the partition goes offline rather than
	// elect the out-of-sync follower.
	lead, follower := h.leaderDiesAlone(nil)
	p := h.part("t", 0)
	if p.Leader != NoLeader || !reflect.DeepEqual(p.ISR, []int32{lead}) || p.LeaderEpoch != 1 {
		t.Fatalf("after leader loss: %+v", p)
	}
	// The follower coming and going changes nothing.
	h.must(command{Op: opBrokerDown, BrokerID: follower})
	h.must(command{Op: opRegisterBroker, Broker: &Broker{ID: follower}})
	if p2 := h.part("t", 0); p2.Leader != NoLeader {
		t.Fatalf("out-of-sync replica elected: %+v", p2)
	}
	// The last in-sync replica returns and leads again with a new epoch.
	h.must(command{Op: opRegisterBroker, Broker: &Broker{ID: lead}})
	p = h.part("t", 0)
	if p.Leader != lead || p.LeaderEpoch != 2 {
		t.Fatalf("after the ISR member returned: %+v", p)
	}
}

func TestUncleanElectionWhenEnabled(t *testing.T) {
	t.Parallel()
	h := newFSMHarness(t, 1, 2)
	_, follower := h.leaderDiesAlone(map[string]string{UncleanLeaderElectionConfig: "true"})
	p := h.part("t", 0)
	if p.Leader != follower || !reflect.DeepEqual(p.ISR, []int32{follower}) {
		t.Fatalf("unclean election: %+v", p)
	}
}

func TestAlterISRFencing(t *testing.T) {
	t.Parallel()
	h := newFSMHarness(t, 1, 2, 3)
	h.must(command{Op: opCreateTopic, Topic: "t", Partitions: 1, RF: 3})
	p := h.part("t", 0)
	l, f1, f2 := p.Replicas[0], p.Replicas[1], p.Replicas[2]
	shrink := command{Op: opAlterISR, Topic: "t", Partition: 0, Leader: l, LeaderEpoch: p.LeaderEpoch,
		PartitionEpoch: p.PartitionEpoch, ISR: []int32{f1, l}}
	res := h.must(shrink)
	if res.Partition == nil || !reflect.DeepEqual(res.Partition.ISR, []int32{l, f1}) ||
		res.Partition.PartitionEpoch != p.PartitionEpoch+1 {
		t.Fatalf("shrink result %+v", res.Partition)
	}
	// The same proposal again (a retry after Raft leadership moved) answers as the first did
	// and changes nothing.
	again := h.must(shrink)
	if again.Partition == nil || again.Partition.PartitionEpoch != res.Partition.PartitionEpoch {
		t.Fatalf("retried shrink: %+v", again.Partition)
	}
	// A different ISR from the same stale view is refused.
	stale := shrink
	stale.ISR = []int32{l}
	h.refused(stale, ErrStaleLeaderEpoch)
	// A follower posing as leader is fenced.
	p = h.part("t", 0)
	h.refused(command{Op: opAlterISR, Topic: "t", Partition: 0, Leader: f1, LeaderEpoch: p.LeaderEpoch,
		PartitionEpoch: p.PartitionEpoch, ISR: []int32{f1}}, ErrStaleLeaderEpoch)
	base := command{Op: opAlterISR, Topic: "t", Partition: 0, Leader: l, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch}
	bad := func(isr []int32) command { c := base; c.ISR = isr; return c }
	h.refused(bad([]int32{f1}), ErrInvalidISR)        // without the leader
	h.refused(bad([]int32{l, 99}), ErrInvalidISR)     // not a replica
	h.refused(bad([]int32{l, f1, f1}), ErrInvalidISR) // duplicate
	h.refused(command{Op: opAlterISR, Topic: "t", Partition: 5}, ErrUnknownTopic)
	// A dead broker cannot be added back.
	h.must(command{Op: opBrokerDown, BrokerID: f2})
	p = h.part("t", 0)
	base = command{Op: opAlterISR, Topic: "t", Partition: 0, Leader: l, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch}
	h.refused(bad([]int32{l, f1, f2}), ErrInvalidISR)
	// Once alive it can (expand after catch-up).
	h.must(command{Op: opRegisterBroker, Broker: &Broker{ID: f2}})
	res = h.must(bad([]int32{l, f1, f2}))
	if len(res.Partition.ISR) != 3 {
		t.Fatalf("expand: %+v", res.Partition)
	}
}

type bufSink struct{ bytes.Buffer }

func (s *bufSink) ID() string    { return "test" }
func (s *bufSink) Cancel() error { return nil }
func (s *bufSink) Close() error  { return nil }

func TestFSMSnapshotRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	h := newFSMHarness(t, 1, 2, 3)
	h.must(command{Op: opCreateTopic, Topic: "t", Partitions: 6, RF: 3, Config: map[string]string{"retention.ms": "1000"}})
	h.must(command{Op: opCreateTopic, Topic: OffsetsTopic, Partitions: 4, RF: 2})
	h.must(command{Op: opBrokerDown, BrokerID: 3})

	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Changes after Snapshot must not leak into the persisted copy.
	h.must(command{Op: opDeleteTopic, Topic: "t"})
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	g := newFSMHarness(t)
	watch := g.f.Watch()
	if err := g.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watch:
	default:
		t.Fatal("Restore did not wake watchers")
	}
	got := g.f.Metadata()
	if _, ok := got.Topics["t"]; !ok || got.Index != h.index-1 {
		t.Fatalf("restored state is not the snapshot's: index %d topics %v", got.Index, got.sortedTopicNames())
	}
	if got.Brokers[3].Alive || !got.Brokers[1].Alive {
		t.Fatalf("brokers %+v", got.Brokers)
	}
	// Applying the same later command on both gives the same state (byte for byte).
	g.index = got.Index
	g.must(command{Op: opDeleteTopic, Topic: "t"})
	a, _ := json.Marshal(h.f.Metadata())
	b, _ := json.Marshal(g.f.Metadata())
	if !bytes.Equal(a, b) {
		t.Fatalf("states differ after restore+apply:\n%s\n%s", a, b)
	}

	if err := g.f.Restore(io.NopCloser(bytes.NewReader([]byte(`{"v":9,"state":{}}`)))); err == nil {
		t.Fatal("unknown snapshot version accepted")
	}
}

func TestCoordinatorPartitionMatchesKafka(t *testing.T) {
	t.Parallel()
	// Java: "abc".hashCode() = 96354; Kafka places group "abc" on partition 96354 % 50 = 4.
	if got := CoordinatorPartition("abc", 50); got != 4 {
		t.Fatalf("abc -> %d", got)
	}
	// "polygenelubricants".hashCode() = Integer.MIN_VALUE, which Kafka's abs maps to 0.
	if got := CoordinatorPartition("polygenelubricants", 50); got != 0 {
		t.Fatalf("MinInt32 hash -> %d", got)
	}
	for _, g := range []string{"", "a", "consumers", "ünïcode"} {
		if p := CoordinatorPartition(g, 7); p < 0 || p >= 7 {
			t.Fatalf("%q -> %d", g, p)
		}
	}
}

// TestRetriedProposalsSucceed: propose retries a command whose answer a
// leader change lost, and its first copy may have been applied. Creating a
// topic, growing it and deleting it then still answer success; real
// refusals stay refusals.
func TestRetriedProposalsSucceed(t *testing.T) {
	t.Parallel()
	h := newFSMHarness(t, 1, 2)
	// As Node.propose answers: the refusal, or no error at all.
	answer := func(res applyResult) (applyResult, error) {
		if res.Err != nil {
			return res, res.Err
		}
		return res, nil
	}
	twice := func(_ context.Context, c command) (applyResult, error) {
		h.apply(c) // applied; the answer is lost
		return answer(h.apply(c))
	}
	once := func(_ context.Context, c command) (applyResult, error) { return answer(h.apply(c)) }
	ctx := context.Background()
	retried := proposals{cfg: Config{DefaultReplicationFactor: 2}, fsm: h.f, propose: twice}
	if err := retried.CreateTopic(ctx, "t", 1, 2, nil); err != nil {
		t.Fatalf("retried create: %v", err)
	}
	if err := retried.CreatePartitions(ctx, "t", 3); err != nil {
		t.Fatalf("retried create partitions: %v", err)
	}
	if n := len(h.f.Metadata().Topics["t"].Partitions); n != 3 {
		t.Fatalf("partitions after a retried grow to 3: %d", n)
	}
	if err := retried.DeleteTopic(ctx, "t"); err != nil {
		t.Fatalf("retried delete: %v", err)
	}
	if _, ok := h.f.Metadata().Topics["t"]; ok {
		t.Fatal("topic still there after a retried delete")
	}

	plain := proposals{cfg: Config{DefaultReplicationFactor: 2}, fsm: h.f, propose: once}
	if err := plain.CreateTopic(ctx, "u", 2, 2, nil); err != nil {
		t.Fatal(err)
	}
	if err := plain.CreateTopic(ctx, "u", 2, 2, nil); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create of u: %v, want ErrTopicExists", err)
	}
	if err := plain.CreatePartitions(ctx, "u", 1); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("shrink u: %v, want ErrInvalidPartitions", err)
	}
	if err := plain.DeleteTopic(ctx, "nope"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("delete of a topic never there: %v, want ErrUnknownTopic", err)
	}
}
