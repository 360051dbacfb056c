package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/internal/forwarded"
	"github.com/tributary-io/tributary/internal/testkit"
)

func freePort(t testing.TB) int { return testkit.FreePort(t) }

func clusterTestLogger(t testing.TB) *slog.Logger { return testkit.Logger(t) }

type testBrokers struct {
	t      testing.TB
	cfgs   []Config
	srvs   []*Server
	faults *cluster.NetFaults
}

// startTestCluster starts size brokers in this process, sharing a fault
// injector, and waits until every one sees all of them alive.
func startTestCluster(t testing.TB, size int) *testBrokers {
	return startTestClusterWith(t, size, nil)
}

// startTestClusterWith is startTestCluster with each broker's configuration
// adjusted by configure (nil: unchanged) before it starts.
func startTestClusterWith(t testing.TB, size int, configure func(i int, cfg *Config)) *testBrokers {
	tb := &testBrokers{t: t, faults: cluster.NewNetFaults()}
	base := t.TempDir()
	var serf []string
	for range size {
		serf = append(serf, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	for i := range size {
		cfg := testConfig(filepath.Join(base, fmt.Sprintf("broker-%d", i+1)))
		cfg.HTTPAddr = ""
		cfg.NodeID = int32(i + 1)
		cfg.Groups.InitialRebalanceDelay = -1
		cfg.KafkaAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cfg.Replication = ReplicationConfig{LagTimeMax: 3 * time.Second, FetchMaxWait: 200 * time.Millisecond, AckTimeout: 3 * time.Second,
			ShutdownHandover: -1} // stop like a crash: the tests stop brokers to fail them
		if testing.Short() {
			// Tests that cut a leader off wait out an acks=all timeout or
			// a follower's lag limit once or twice each.
			cfg.Replication.LagTimeMax, cfg.Replication.AckTimeout = 1500*time.Millisecond, 1500*time.Millisecond
		}
		cc := cluster.LoopbackConfig(cfg.NodeID, "", serf, func() int { return freePort(t) })
		r := testkit.Raft()
		cc.Raft.HeartbeatTimeout, cc.Raft.ElectionTimeout, cc.Raft.LeaderLeaseTimeout = r.Heartbeat, r.Election, r.LeaderLease
		if testing.Short() {
			cc.Gossip = cluster.GossipTimings(testkit.Gossip())
		}
		cc.Faults = tb.faults
		cfg.Cluster = &cc
		if configure != nil {
			configure(i, &cfg)
		}
		tb.cfgs = append(tb.cfgs, cfg)
	}
	tb.srvs = make([]*Server, size)
	logger := clusterTestLogger(t)
	for i := range size {
		srv, err := Start(tb.cfgs[i], logger, nil)
		if err != nil {
			t.Fatalf("start broker %d: %v", i+1, err)
		}
		testkit.CloseAtEnd(t, fmt.Sprintf("broker %d", i+1), srv)
		tb.srvs[i] = srv
	}
	tb.waitFor("all brokers alive", 30*time.Second, func() bool {
		for _, s := range tb.srvs {
			if len(s.Cluster().Metadata().LiveBrokers()) != size {
				return false
			}
		}
		return true
	})
	return tb
}

func (tb *testBrokers) waitFor(what string, limit time.Duration, cond func() bool) {
	tb.t.Helper()
	testkit.Eventually(tb.t, limit, what, cond)
}

// waitTopic waits until every broker's metadata has topic with leaders.
func (tb *testBrokers) waitTopic(topic string) {
	tb.t.Helper()
	tb.waitFor("topic "+topic+" on every broker", 20*time.Second, func() bool {
		for _, s := range tb.srvs {
			t, ok := s.Cluster().Metadata().Topics[topic]
			if !ok {
				return false
			}
			for _, p := range t.Partitions {
				if p.Leader == cluster.NoLeader {
					return false
				}
			}
		}
		return true
	})
}

// leading waits until a broker other than except (-1: any) leads topic's
// partition 0 in the view of the brokers other than except, and is ready
// to serve it; it returns that broker and the partition's state.
func (tb *testBrokers) leading(topic string, except int32) (*Server, cluster.PartitionState) {
	tb.t.Helper()
	var leader *Server
	var st cluster.PartitionState
	tb.waitFor(fmt.Sprintf("a leader of %s/0 other than %d, ready to serve it", topic, except), 30*time.Second, func() bool {
		for _, s := range tb.srvs {
			if s.cfg.NodeID == except {
				continue
			}
			ps, _ := s.Cluster().PartitionState(topic, 0)
			if ps.Leader < 0 || ps.Leader == except {
				return false
			}
			leader, st = tb.byID(ps.Leader), ps
			own, _ := leader.Cluster().PartitionState(topic, 0)
			return own.Leader == ps.Leader && own.LeaderEpoch == ps.LeaderEpoch && leader.Readiness().Ready
		}
		return false
	})
	return leader, st
}

// threeWithLeader starts three brokers with one partition of topic on all
// of them (min.insync.replicas 2), and returns them, a context for the
// test, and the partition's leader, ready to serve it, with its state.
func threeWithLeader(t *testing.T, topic string) (*testBrokers, context.Context, *Server, cluster.PartitionState) {
	t.Helper()
	tb := startTestCluster(t, 3)
	tb.createTopic(topic, 1, 3, 2)
	leader, st := tb.leading(topic, -1)
	return tb, testkit.Context(t, 2*time.Minute), leader, st
}

// produce writes n records to topic with acks=all through the broker at addr.
func (tb *testBrokers) produce(ctx context.Context, addr, topic string, n int) {
	tb.t.Helper()
	cl := newClient(tb.t, addr, kgo.SeedBrokers(tb.addrs()...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	for range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			tb.t.Fatalf("produce to %s through %s: %v", topic, addr, err)
		}
	}
}

func (tb *testBrokers) addrs() []string {
	var out []string
	for _, s := range tb.srvs {
		out = append(out, s.Addr())
	}
	return out
}

func (tb *testBrokers) byID(id int32) *Server { return tb.srvs[id-1] }

// other is a broker other than broker id.
func (tb *testBrokers) other(id int32) *Server {
	for _, s := range tb.srvs {
		if s.cfg.NodeID != id {
			return s
		}
	}
	return nil
}

// createTopic creates a topic through the first broker and waits until
// every broker's metadata has it with leaders.
func (tb *testBrokers) createTopic(name string, partitions int32, rf int16, minISR int) {
	tb.t.Helper()
	createReplicatedTopic(tb.t, tb.addrs()[0], name, partitions, rf, minISR)
	tb.waitTopic(name)
}

func createReplicatedTopic(t testing.TB, addr, name string, partitions int32, rf int16, minISR int) {
	t.Helper()
	createTopicRF(t, newClient(t, addr), name, partitions, rf, map[string]string{"min.insync.replicas": strconv.Itoa(minISR)})
}

// TestClusterReplicatesAndRoutes runs three brokers: Metadata lists them
// with leaders, replicas and ISRs; acks=all writes land on every replica
// byte for byte; a broker that does not lead a partition refuses it.
func TestClusterReplicatesAndRoutes(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	tb.createTopic("rep", 3, 3, 2)

	ctx := testkit.Context(t, 60*time.Second)
	prod := newClient(t, tb.addrs()[1], kgo.DefaultProduceTopic("rep"), kgo.RequiredAcks(kgo.AllISRAcks()))
	const n = 2000
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i % 7)), Value: []byte(fmt.Sprintf("v%05d", i))})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce acks=all: %v", err)
	}

	// Metadata from any broker: 3 brokers, every partition led, RF 3.
	adm := newClient(t, tb.addrs()[2])
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("rep")
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	if len(mresp.Brokers) != 3 || mresp.ControllerID < 1 {
		t.Fatalf("metadata: %d brokers, controller %d", len(mresp.Brokers), mresp.ControllerID)
	}
	leaders := map[int32]int32{}
	for _, p := range mresp.Topics[0].Partitions {
		if p.ErrorCode != 0 || p.Leader < 1 || len(p.Replicas) != 3 || len(p.ISR) < 2 {
			t.Fatalf("partition %d: %+v", p.Partition, p)
		}
		leaders[p.Partition] = p.Leader
	}

	// Every replica ends up with the same bytes.
	tb.waitFor("replicas converge", 20*time.Second, func() bool {
		for p := range int32(3) {
			var want []byte
			for i, s := range tb.srvs {
				l, err := s.Topics().Partition("rep", p)
				if err != nil {
					return false
				}
				b, err := l.Read(0, 1<<30, -1)
				if err != nil {
					return false
				}
				if i == 0 {
					want = b
				} else if !bytes.Equal(b, want) {
					return false
				}
			}
		}
		return true
	})
	total := int64(0)
	for p := range int32(3) {
		l, _ := tb.srvs[0].Topics().Partition("rep", p)
		total += l.NextOffset()
	}
	if total != n {
		t.Fatalf("replicas hold %d records, want %d", total, n)
	}

	// DescribeConfigs shows the topic's min.insync.replicas.
	dreq := kmsg.NewPtrDescribeConfigsRequest()
	dr := kmsg.NewDescribeConfigsRequestResource()
	dr.ResourceType, dr.ResourceName, dr.ConfigNames = kmsg.ConfigResourceTypeTopic, "rep", []string{"min.insync.replicas"}
	dreq.Resources = append(dreq.Resources, dr)
	dresp := dialRaw(t, tb.addrs()[2]).roundTrip(dreq).(*kmsg.DescribeConfigsResponse)
	if len(dresp.Resources) != 1 || len(dresp.Resources[0].Configs) != 1 || dresp.Resources[0].Configs[0].Value == nil ||
		*dresp.Resources[0].Configs[0].Value != "2" {
		t.Fatalf("describe configs: %+v", dresp.Resources)
	}

	// A produce to a broker that does not lead the partition.
	follower := tb.other(leaders[0])
	c := dialRaw(t, follower.Addr())
	got := produceOne(t, c, -1, "rep", 0, buildBatch(t, 1, -1, 0, 10))
	if got.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to follower: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(got.ErrorCode))
	}

	// Consumers read everything back through the leaders.
	cons := newClient(t, tb.addrs()[0], kgo.ConsumeTopics("rep"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	seen := map[string]bool{}
	for len(seen) < n && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if len(seen) != n {
		t.Fatalf("consumed %d distinct records, want %d", len(seen), n)
	}

	// FindCoordinator names the leader of the group's offsets partition,
	// and any other broker answers NOT_COORDINATOR for that group.
	freq := kmsg.NewPtrFindCoordinatorRequest()
	freq.CoordinatorKey = "g1"
	var fresp *kmsg.FindCoordinatorResponse
	tb.waitFor("coordinator", 20*time.Second, func() bool {
		fresp, err = freq.RequestWith(ctx, adm)
		return err == nil && fresp.ErrorCode == 0
	})
	other := tb.srvs[fresp.NodeID%3] // a broker other than the coordinator
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g1", "m", 1
	hresp := dialRaw(t, other.Addr()).roundTrip(hb).(*kmsg.HeartbeatResponse)
	if hresp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat to broker %d (coordinator %d): %v", other.cfg.NodeID, fresp.NodeID, kerr.ErrorForCode(hresp.ErrorCode))
	}
}

// TestIsolatedLeaderCannotAcknowledge cuts a partition leader off from the
// other brokers: it cannot acknowledge acks=all writes, the others elect a
// new leader and keep accepting writes, and after healing the old leader
// drops its unacknowledged tail and catches up.
func TestIsolatedLeaderCannotAcknowledge(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	tb.createTopic("iso", 1, 3, 2)
	ctx := testkit.Context(t, 90*time.Second)
	prod := newClient(t, tb.addrs()[0], kgo.DefaultProduceTopic("iso"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 100 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("before-%d", i))}).FirstErr(); err != nil {
			t.Fatalf("produce before isolation: %v", err)
		}
	}
	st, _ := tb.srvs[0].Cluster().PartitionState("iso", 0)
	old := tb.byID(st.Leader)
	tb.waitFor("full ISR", 10*time.Second, func() bool {
		s, _ := old.Cluster().PartitionState("iso", 0)
		return len(s.ISR) == 3
	})
	tb.faults.Isolate(old.cfg.NodeID)

	// Straight to the isolated leader: appended locally, never acknowledged.
	c := dialRaw(t, old.Addr())
	got := produceOne(t, c, -1, "iso", 0, buildBatch(t, 5, -1, 0, 10))
	switch got.ErrorCode {
	case kerr.RequestTimedOut.Code, kerr.NotEnoughReplicasAfterAppend.Code, kerr.NotLeaderForPartition.Code, kerr.NotEnoughReplicas.Code:
	default:
		t.Fatalf("isolated leader answered acks=all with %v", kerr.ErrorForCode(got.ErrorCode))
	}

	// The majority moves on.
	var rest []string
	for _, s := range tb.srvs {
		if s != old {
			rest = append(rest, s.Addr())
		}
	}
	tb.waitFor("new leader", 30*time.Second, func() bool {
		for _, s := range tb.srvs {
			if s == old {
				continue
			}
			ps, _ := s.Cluster().PartitionState("iso", 0)
			if ps.Leader != cluster.NoLeader && ps.Leader != old.cfg.NodeID {
				return true
			}
		}
		return false
	})
	prod2 := newClient(t, rest[0], kgo.SeedBrokers(rest...), kgo.DefaultProduceTopic("iso"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 100 {
		if err := prod2.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("during-%d", i))}).FirstErr(); err != nil {
			t.Fatalf("produce to the majority: %v", err)
		}
	}

	tb.faults.Heal(old.cfg.NodeID)
	var leader *Server
	tb.waitFor("old leader catches up and rejoins the ISR", 60*time.Second, func() bool {
		for _, s := range tb.srvs {
			ps, _ := s.Cluster().PartitionState("iso", 0)
			if ps.Leader == s.cfg.NodeID {
				leader = s
			}
		}
		if leader == nil || leader == old {
			return false
		}
		ps, _ := leader.Cluster().PartitionState("iso", 0)
		if !slices.Contains(ps.ISR, old.cfg.NodeID) {
			return false
		}
		ll, _ := leader.Topics().Partition("iso", 0)
		ol, _ := old.Topics().Partition("iso", 0)
		a, err1 := ll.Read(0, 1<<30, -1)
		b, err2 := ol.Read(0, 1<<30, -1)
		return err1 == nil && err2 == nil && bytes.Equal(a, b)
	})
	ol, _ := old.Topics().Partition("iso", 0)
	if ol.NextOffset() != 200 {
		t.Fatalf("old leader's log ends at %d, want 200 (its unacknowledged records must go)", ol.NextOffset())
	}
	if n := metricValue(t, old, "tributary_core_replica_truncations_total"); n < 1 {
		t.Errorf("old leader counted %v truncations, want at least 1", n)
	}
	if n := metricValue(t, leader, "tributary_core_isr_changes_total"); n < 1 {
		t.Errorf("new leader counted %v ISR changes, want the old leader's return", n)
	}
}

// TestCommittedOffsetsSurviveCoordinatorLoss commits a group's offset,
// stops the coordinating broker and reads the offset back from the broker
// that takes over the group's offsets partition.
func TestCommittedOffsetsSurviveCoordinatorLoss(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	tb.createTopic("grp", 1, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = "keeper", -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = "grp"
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 42
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	cl := newClient(t, tb.addrs()[0], kgo.SeedBrokers(tb.addrs()...))
	tb.waitFor("offset commit", 30*time.Second, func() bool {
		resp, err := commit.RequestWith(ctx, cl)
		return err == nil && resp.Topics[0].Partitions[0].ErrorCode == 0
	})
	// A second group on the same offsets partition commits and is deleted:
	// the deletion must survive too.
	gone := ""
	for i := 0; gone == ""; i++ {
		if g := fmt.Sprintf("gone-%d", i); cluster.CoordinatorPartition(g, 3) == cluster.CoordinatorPartition("keeper", 3) {
			gone = g
		}
	}
	commit.Group = gone
	tb.waitFor("offset commit", 30*time.Second, func() bool {
		resp, err := commit.RequestWith(ctx, cl)
		return err == nil && resp.Topics[0].Partitions[0].ErrorCode == 0
	})
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{gone}
	if dresp, err := del.RequestWith(ctx, cl); err != nil || dresp.Groups[0].ErrorCode != 0 {
		t.Fatalf("delete group %s: %v %+v", gone, err, dresp)
	}

	find := kmsg.NewPtrFindCoordinatorRequest()
	find.CoordinatorKey = "keeper"
	fresp, err := find.RequestWith(ctx, cl)
	if err != nil || fresp.ErrorCode != 0 {
		t.Fatalf("find coordinator: %v %+v", err, fresp)
	}
	coord := tb.byID(fresp.NodeID)
	if err := coord.Close(); err != nil {
		t.Fatalf("stop coordinator %d: %v", fresp.NodeID, err)
	}
	var rest []string
	for _, s := range tb.srvs {
		if s != coord {
			rest = append(rest, s.Addr())
		}
	}
	cl2 := newClient(t, rest[0], kgo.SeedBrokers(rest...))
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Group = "keeper"
	ft := kmsg.NewOffsetFetchRequestTopic()
	ft.Topic, ft.Partitions = "grp", []int32{0}
	fetch.Topics = append(fetch.Topics, ft)
	var got int64 = -2
	tb.waitFor("committed offset from the new coordinator", 30*time.Second, func() bool {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		resp, err := fetch.RequestWith(rctx, cl2)
		if err != nil || resp.ErrorCode != 0 || len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			return false
		}
		got = resp.Topics[0].Partitions[0].Offset
		return got == 42
	})
	fetch.Group = gone
	resp, err := fetch.RequestWith(ctx, cl2)
	if err != nil || resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].Offset != -1 {
		t.Fatalf("deleted group %s has offsets again at the new coordinator: %v %+v", gone, err, resp)
	}
}

// metricValue sums a metric's samples in a server's registry.
func metricValue(t *testing.T, s *Server, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := s.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			// labels are name, value pairs the series must carry.
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
					return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}) {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestMinInsyncReplicas: with a follower gone and the ISR shrunk below
// min.insync.replicas, acks=all is refused with NOT_ENOUGH_REPLICAS while
// acks=1 still succeeds.
func TestMinInsyncReplicas(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	tb.createTopic("mis", 1, 3, 3)
	leader, st := tb.leading("mis", -1)
	gone := tb.other(st.Leader)
	c := dialRaw(t, leader.Addr())
	if got := produceOne(t, c, -1, "mis", 0, buildBatch(t, 3, -1, 0, 10)); got.ErrorCode != 0 {
		t.Fatalf("acks=all with the full ISR: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	tb.waitFor("ISR without the stopped follower", 30*time.Second, func() bool {
		ps, _ := leader.Cluster().PartitionState("mis", 0)
		return len(ps.ISR) == 2 && !slices.Contains(ps.ISR, gone.cfg.NodeID)
	})
	// Under-replicated is degraded, not failing: the broker still serves.
	if h := leader.Health(); h.Status != StatusDegraded || !slices.ContainsFunc(h.Reasons, func(r string) bool {
		return strings.HasPrefix(r, "mis/0 under-replicated")
	}) {
		t.Errorf("leader health with a shrunk ISR: %+v", h)
	}
	// Ready again once the metadata has caught up (the stopped broker may
	// have been the Raft leader, and an election makes every broker wait).
	tb.waitFor("the leader ready with a shrunk ISR", 30*time.Second, func() bool {
		return leader.Readiness().Ready
	})
	if got := produceOne(t, c, -1, "mis", 0, buildBatch(t, 3, -1, 0, 10)); got.ErrorCode != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with 2 in sync of min 3: %v, want NOT_ENOUGH_REPLICAS", kerr.ErrorForCode(got.ErrorCode))
	}
	if got := produceOne(t, c, 1, "mis", 0, buildBatch(t, 3, -1, 0, 10)); got.ErrorCode != 0 {
		t.Fatalf("acks=1 with a shrunk ISR: %v", kerr.ErrorForCode(got.ErrorCode))
	}
}

// TestClusterProducerIDsAreUnique: brokers hand out producer ids from their
// own counters; in a cluster they must never collide.
func TestClusterProducerIDsAreUnique(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	seen := map[int64]int32{}
	for round := range 3 {
		for _, s := range tb.srvs {
			resp := dialRaw(t, s.Addr()).roundTrip(kmsg.NewPtrInitProducerIDRequest()).(*kmsg.InitProducerIDResponse)
			if resp.ErrorCode != 0 || resp.ProducerID <= 0 || forwarded.IsProducerID(resp.ProducerID) {
				t.Fatalf("broker %d round %d: id %d, %v", s.cfg.NodeID, round, resp.ProducerID, kerr.ErrorForCode(resp.ErrorCode))
			}
			if other, dup := seen[resp.ProducerID]; dup {
				t.Fatalf("producer id %d handed out by brokers %d and %d", resp.ProducerID, other, s.cfg.NodeID)
			}
			seen[resp.ProducerID] = s.cfg.NodeID
		}
	}
}

// TestSingleBrokerCluster: cluster mode with one broker (bootstrap_expect 1)
// serves auto-created topics and consumer groups like the single-node mode.
func TestSingleBrokerCluster(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 1)
	ctx := testkit.Context(t, 60*time.Second)
	prod := newClient(t, tb.addrs()[0], kgo.DefaultProduceTopic("solo"), kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 50 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	cons := newClient(t, tb.addrs()[0], kgo.ConsumeTopics("solo"), kgo.ConsumerGroup("solo-group"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	n := 0
	for n < 50 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(*kgo.Record) { n++ })
	}
	if n != 50 {
		t.Fatalf("consumed %d of 50", n)
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	st, ok := tb.srvs[0].Cluster().PartitionState(cluster.OffsetsTopic, 0)
	if !ok || len(st.Replicas) != 1 || st.Leader != 1 {
		t.Fatalf("offsets topic partition 0: %+v %v", st, ok)
	}
}
