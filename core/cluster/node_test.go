package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tributary-io/tributary/internal/testkit"
)

func freePort(t testing.TB) int { return testkit.FreePort(t) }

// useTestTimings gives cfg the Raft timeouts of every test cluster and,
// under -short, their Serf timings too.
func useTestTimings(cfg *Config) {
	r := testkit.Raft()
	cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.LeaderLeaseTimeout = r.Heartbeat, r.Election, r.LeaderLease
	if testing.Short() {
		cfg.Gossip = GossipTimings(testkit.Gossip())
	}
}

type testCluster struct {
	t     *testing.T
	log   *slog.Logger
	cfgs  []Config
	nodes []*Node
	regs  []*prometheus.Registry
}

func newTestCluster(t *testing.T, size int) *testCluster {
	c := &testCluster{t: t, log: testkit.Logger(t), nodes: make([]*Node, size), regs: make([]*prometheus.Registry, size)}
	base := t.TempDir()
	var serf []string
	for range size {
		serf = append(serf, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	for i := range size {
		cfg := LoopbackConfig(int32(i+1), filepath.Join(base, fmt.Sprintf("broker-%d", i+1)), serf,
			func() int { return freePort(t) })
		useTestTimings(&cfg)
		c.cfgs = append(c.cfgs, cfg)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

// startTestCluster is newTestCluster already started.
func startTestCluster(t *testing.T, size int) *testCluster {
	t.Helper()
	c := newTestCluster(t, size)
	c.startAll()
	return c
}

// startAll starts every node and waits until each sees all of them alive
// with a Raft leader.
func (c *testCluster) startAll() {
	c.t.Helper()
	var ids []int32
	for i := range c.nodes {
		c.start(i)
		ids = append(ids, int32(i+1))
	}
	c.waitFor("cluster formed", 30*time.Second, allAlive(ids...))
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	c.regs[i] = prometheus.NewRegistry()
	cfg := c.cfgs[i]
	cfg.Registerer = c.regs[i]
	n, err := NewNode(cfg, c.log)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		c.t.Fatal(err)
	}
	c.nodes[i] = n
}

func (c *testCluster) stop(i int) {
	if c.nodes[i] == nil {
		return
	}
	if err := c.nodes[i].Close(); err != nil {
		c.t.Errorf("close broker %d: %v", i+1, err)
	}
	c.nodes[i] = nil
}

func (c *testCluster) running() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// waitFor polls cond on every running node until it holds on all of them, or fails after limit.
func (c *testCluster) waitFor(what string, limit time.Duration, cond func(n *Node) error) {
	c.t.Helper()
	var err error
	held := testkit.Poll(limit, func() bool {
		err = nil
		for _, n := range c.running() {
			if e := cond(n); e != nil {
				err = fmt.Errorf("broker %d: %w", n.ID(), e)
				return false
			}
		}
		return true
	})
	if !held {
		c.t.Fatalf("%s: not within %v: %v", what, limit, err)
	}
}

func (c *testCluster) controller() *Node {
	c.t.Helper()
	for _, n := range c.running() {
		if n.IsController() {
			return n
		}
	}
	c.t.Fatal("no controller")
	return nil
}

// follower is a running node that is not the controller.
func (c *testCluster) follower() *Node {
	c.t.Helper()
	for _, n := range c.running() {
		if !n.IsController() {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

func allAlive(ids ...int32) func(n *Node) error {
	return func(n *Node) error {
		if _, ok := n.Controller(); !ok {
			return errors.New("no raft leader known")
		}
		md := n.Metadata()
		for _, id := range ids {
			if b, ok := md.Brokers[id]; !ok || !b.Alive {
				return fmt.Errorf("broker %d not registered alive", id)
			}
		}
		return nil
	}
}

// TestClusterLifecycle walks a 3-broker cluster through formation, topic placement, a broker
// failure, that broker's return and a full cluster restart.
func TestClusterLifecycle(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 3)

	ctrl := c.controller()
	conf := ctrl.raft.GetConfiguration()
	if err := conf.Error(); err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, s := range conf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	if voters != 3 {
		t.Fatalf("raft voters = %d, want 3: %+v", voters, conf.Configuration().Servers)
	}

	// Create through a follower: the proposal is forwarded, and the follower reads its own write.
	follower := c.follower()
	if err := follower.CreateTopic(testkit.Context(t, 10*time.Second), "events", 6, 3, nil); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(follower.m.forwarded); got < 1 {
		t.Fatalf("proposal was not forwarded (forwarded=%v)", got)
	}
	md := follower.Metadata()
	if _, ok := md.Topics["events"]; !ok {
		t.Fatal("follower does not see the topic it created")
	}
	if counts := md.LeaderCounts(); counts[1] != 2 || counts[2] != 2 || counts[3] != 2 {
		t.Fatalf("leaders not spread 2/2/2: %v", counts)
	}
	if err := follower.CreateTopic(testkit.Context(t, 10*time.Second), "events", 1, 1, nil); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create: %v, want ErrTopicExists through forwarding", err)
	}
	if err := follower.CreateTopic(testkit.Context(t, 10*time.Second), "too-wide", 1, 4, nil); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Fatalf("rf 4 on 3 brokers: %v", err)
	}
	c.waitFor("topic replicated", 10*time.Second, func(n *Node) error {
		if _, ok := n.PartitionState("events", 5); !ok {
			return errors.New("events/5 missing")
		}
		return nil
	})

	coord, err := follower.Coordinator(testkit.Context(t, 10*time.Second), "analytics")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := follower.PartitionState(OffsetsTopic, CoordinatorPartition("analytics", 3)); coord.ID != p.Leader || coord.KafkaAddr == "" {
		t.Fatalf("coordinator %+v, offsets partition %+v", coord, p)
	}

	// The victim is the controller itself, so failover also needs a Raft election.
	victim := c.controller()
	vid := victim.ID()
	before := victim.Metadata().Topics["events"]
	led := 0
	for _, p := range before.Partitions {
		if p.Leader == vid {
			led++
		}
	}
	if led != 2 {
		t.Fatalf("victim %d leads %d partitions, want 2", vid, led)
	}
	stopped := time.Now()
	c.stop(int(vid - 1))
	c.waitFor("failover", 30*time.Second, func(n *Node) error {
		md := n.Metadata()
		if md.Brokers[vid].Alive {
			return fmt.Errorf("broker %d still alive", vid)
		}
		for i, p := range md.Topics["events"].Partitions {
			old := before.Partitions[i]
			if slices.Contains(p.ISR, vid) {
				return fmt.Errorf("partition %d: %d still in ISR %v", i, vid, p.ISR)
			}
			if old.Leader != vid {
				continue
			}
			if p.Leader == vid || p.Leader == NoLeader {
				return fmt.Errorf("partition %d: leader %d", i, p.Leader)
			}
			if !slices.Contains(old.ISR, p.Leader) || p.LeaderEpoch <= old.LeaderEpoch {
				return fmt.Errorf("partition %d: new leader %d epoch %d, old ISR %v epoch %d", i, p.Leader, p.LeaderEpoch, old.ISR, old.LeaderEpoch)
			}
		}
		return nil
	})
	t.Logf("crash of the controller (broker %d): partitions moved on every survivor after %v", vid, time.Since(stopped).Round(time.Millisecond))
	for _, n := range c.running() {
		if got := testutil.ToFloat64(n.m.elections.WithLabelValues("elected")); got < 2 {
			t.Fatalf("broker %d counted %v leader elections, want ≥ 2", n.ID(), got)
		}
	}

	// An ISR change proposed by the new leader of a partition (from its own node).
	p0, _ := c.running()[0].PartitionState("events", 0)
	lnode := c.nodes[p0.Leader-1]
	shrunk, err := lnode.ProposeISR(testkit.Context(t, 10*time.Second), p0, []int32{p0.Leader})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shrunk.ISR, []int32{p0.Leader}) || shrunk.PartitionEpoch != p0.PartitionEpoch+1 {
		t.Fatalf("shrunk ISR %+v", shrunk)
	}
	if _, err := lnode.ProposeISR(testkit.Context(t, 10*time.Second), p0, p0.ISR); !errors.Is(err, ErrStaleLeaderEpoch) {
		t.Fatalf("stale ISR proposal: %v", err)
	}

	// The victim comes back on its directory: registered alive again, leadership stays put.
	c.start(int(vid - 1))
	c.waitFor("victim rejoined", 20*time.Second, allAlive(1, 2, 3))
	want := c.controller().Metadata()

	// Full cluster restart, with a snapshot on disk so start-up restores from it.
	for _, n := range c.running() {
		if err := n.raft.Snapshot().Error(); err != nil {
			t.Fatalf("broker %d snapshot: %v", n.ID(), err)
		}
	}
	for i := range c.nodes {
		c.stop(i)
	}
	for i := range c.cfgs {
		snaps, err := os.ReadDir(filepath.Join(c.cfgs[i].DataDir, "snapshots"))
		if err != nil || len(snaps) == 0 {
			t.Fatalf("broker %d has no snapshot on disk: %v", i+1, err)
		}
	}
	for i := range 3 {
		c.start(i)
	}
	c.waitFor("cluster restarted", 30*time.Second, allAlive(1, 2, 3))
	c.waitFor("metadata survived", 20*time.Second, func(n *Node) error {
		md := n.Metadata()
		for _, name := range []string{"events", OffsetsTopic} {
			got, ok := md.Topics[name]
			if !ok {
				return fmt.Errorf("topic %s lost", name)
			}
			for i, p := range got.Partitions {
				w := want.Topics[name].Partitions[i]
				if !slices.Equal(p.Replicas, w.Replicas) || p.LeaderEpoch < w.LeaderEpoch {
					return fmt.Errorf("%s/%d: %+v, before restart %+v", name, i, p, w)
				}
				if p.Leader == NoLeader {
					return fmt.Errorf("%s/%d offline", name, i)
				}
			}
		}
		if got := md.Topics["events"].Partitions[0].ISR; len(got) != 1 {
			return fmt.Errorf("events/0 ISR %v, want the shrunk ISR to survive", got)
		}
		return nil
	})
}

func raftServers(t *testing.T, n *Node) (voters, nonvoters []int32) {
	t.Helper()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.Configuration().Servers {
		id, _ := strconv.Atoi(string(s.ID))
		if s.Suffrage == raft.Voter {
			voters = append(voters, int32(id))
		} else {
			nonvoters = append(nonvoters, int32(id))
		}
	}
	slices.Sort(voters)
	slices.Sort(nonvoters)
	return voters, nonvoters
}

// TestFourthBrokerIsSpareVoter: with MaxVoters 3 a fourth broker joins Raft as a non-voter (it
// still gets the metadata), and takes the vote of a voter that stays down, so the cluster survives
// a second voter failure.
func TestFourthBrokerIsSpareVoter(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 4)
	for i := range c.cfgs {
		c.cfgs[i].BootstrapExpect = 3
		c.cfgs[i].AbsentGrace = time.Second
	}
	for i := range 3 {
		c.start(i)
	}
	c.waitFor("three brokers formed", 20*time.Second, allAlive(1, 2, 3))
	c.start(3)
	c.waitFor("fourth broker registered", 20*time.Second, allAlive(1, 2, 3, 4))
	ctrl := c.controller()
	var voters, nonvoters []int32
	if !testkit.Poll(10*time.Second, func() bool {
		voters, nonvoters = raftServers(t, ctrl)
		return slices.Equal(voters, []int32{1, 2, 3}) && slices.Equal(nonvoters, []int32{4})
	}) {
		t.Fatalf("voters %v non-voters %v, want [1 2 3] [4]", voters, nonvoters)
	}

	// Created through the non-voter: 8 partitions RF 2 over 4 brokers, 2 leaders each.
	if err := c.nodes[3].CreateTopic(testkit.Context(t, 10*time.Second), "spread", 8, 2, nil); err != nil {
		t.Fatal(err)
	}
	if counts := c.nodes[3].Metadata().LeaderCounts(); len(counts) != 4 || counts[1] != 2 || counts[2] != 2 || counts[3] != 2 || counts[4] != 2 {
		t.Fatalf("leaders %v, want 2 each", counts)
	}

	// Stop a voter that is not the controller: broker 4 takes its vote.
	var victims []int32
	for _, id := range []int32{1, 2, 3} {
		if id != ctrl.ID() {
			victims = append(victims, id)
		}
	}
	c.stop(int(victims[0] - 1))
	if !testkit.Poll(20*time.Second, func() bool {
		voters, _ = raftServers(t, ctrl)
		return len(voters) == 3 && slices.Contains(voters, 4) && !slices.Contains(voters, victims[0])
	}) {
		t.Fatalf("voters %v: broker 4 did not replace %d", voters, victims[0])
	}
	// A second original voter goes: the controller and broker 4 still make a quorum.
	c.stop(int(victims[1] - 1))
	if err := c.nodes[3].CreateTopic(testkit.Context(t, 20*time.Second), "after-two-failures", 2, 1, nil); err != nil {
		t.Fatalf("create after losing two original voters: %v", err)
	}
	c.waitFor("partitions moved off both failed brokers", 20*time.Second, func(n *Node) error {
		for _, p := range n.Metadata().Topics["spread"].Partitions {
			if p.Leader == victims[0] || p.Leader == victims[1] {
				return fmt.Errorf("spread/%d still led by %d", p.Partition, p.Leader)
			}
		}
		return nil
	})
}

// TestControlledLeave: a broker that leaves (the controller, here) hands off Raft leadership and
// is marked down, with its partitions moved, before Leave returns.
func TestControlledLeave(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 3)
	ctrl := c.controller()
	if err := ctrl.CreateTopic(testkit.Context(t, 10*time.Second), "t", 3, 2, nil); err != nil {
		t.Fatal(err)
	}
	vid := ctrl.ID()
	start := time.Now()
	if err := ctrl.Leave(testkit.Context(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Logf("controlled leave of the controller took %v", time.Since(start).Round(time.Millisecond))
	c.nodes[vid-1] = nil
	// Leave returned after the broker's own copy showed it down; check the survivors agree.
	c.waitFor("survivors see the departure", 10*time.Second, func(n *Node) error {
		md := n.Metadata()
		if md.Brokers[vid].Alive {
			return fmt.Errorf("broker %d still alive", vid)
		}
		for _, p := range md.Topics["t"].Partitions {
			if p.Leader == vid || p.Leader == NoLeader {
				return fmt.Errorf("t/%d leader %d", p.Partition, p.Leader)
			}
		}
		return nil
	})
	if err := ctrl.Leave(testkit.Context(t, time.Second)); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Leave: %v", err)
	}
}

// TestRestartWithoutOneBroker: after a full stop only two brokers come back; the third, still
// registered alive in the restored metadata but unknown to Serf, is marked down after AbsentGrace
// and its partitions move to the survivors.
func TestRestartWithoutOneBroker(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	for i := range c.cfgs {
		c.cfgs[i].AbsentGrace = time.Second
	}
	c.startAll()
	if err := c.nodes[0].CreateTopic(testkit.Context(t, 10*time.Second), "t", 3, 3, nil); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		c.stop(i)
	}
	c.start(0)
	c.start(1)
	c.waitFor("two brokers back, third marked down", 30*time.Second, func(n *Node) error {
		md := n.Metadata()
		if b := md.Brokers[3]; b == nil || b.Alive {
			return errors.New("broker 3 not marked down")
		}
		for _, id := range []int32{1, 2} {
			if !md.Brokers[id].Alive {
				return fmt.Errorf("broker %d not alive", id)
			}
		}
		t := md.Topics["t"]
		if t == nil {
			return errors.New("topic lost")
		}
		for _, p := range t.Partitions {
			if p.Leader != 1 && p.Leader != 2 {
				return fmt.Errorf("t/%d leader %d", p.Partition, p.Leader)
			}
		}
		return nil
	})
	// With two of the three expected brokers the offsets topic is not created under-replicated.
	if _, err := c.nodes[0].Coordinator(testkit.Context(t, 5*time.Second), "g"); !errors.Is(err, ErrCoordinatorNotAvailable) {
		t.Fatalf("coordinator with 2 of 3 brokers: %v", err)
	}
	if _, ok := c.nodes[0].Metadata().Topics[OffsetsTopic]; ok {
		t.Fatal("offsets topic created with too few brokers")
	}
}

// TestIsolatedController cuts the controller off the network: the other two elect a new
// controller and move its partitions, the isolated broker cannot change metadata, and after the
// cut heals it rejoins and catches up with what was decided without it.
func TestIsolatedController(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 3)
	faults := NewNetFaults()
	for i := range c.cfgs {
		c.cfgs[i].Faults = faults
	}
	c.startAll()
	ctrl := c.controller()
	if err := ctrl.CreateTopic(testkit.Context(t, 10*time.Second), "t", 6, 3, nil); err != nil {
		t.Fatal(err)
	}
	cut := ctrl.ID()
	var majority []*Node
	for _, n := range c.running() {
		if n.ID() != cut {
			majority = append(majority, n)
		}
	}
	if err := majority[0].waitApplied(testkit.Context(t, 10*time.Second), ctrl.fsm.AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	before := majority[0].Metadata().Topics["t"]

	start := time.Now()
	faults.Isolate(cut)
	var md *Snapshot
	var id int32
	var ok bool
	if !testkit.Poll(30*time.Second, func() bool {
		md = majority[0].Metadata()
		id, ok = majority[0].Controller()
		moved := ok && id != cut && !md.Brokers[cut].Alive
		for _, p := range md.Topics["t"].Partitions {
			moved = moved && p.Leader != cut && p.Leader != NoLeader && !slices.Contains(p.ISR, cut)
		}
		return moved
	}) {
		t.Fatalf("majority did not take over within 30s: controller %d/%v, brokers %+v", id, ok, md.Brokers)
	}
	t.Logf("controller %d isolated: new controller and partitions moved after %v", cut, time.Since(start).Round(time.Millisecond))
	for i, p := range majority[0].Metadata().Topics["t"].Partitions {
		if before.Partitions[i].Leader == cut && p.LeaderEpoch <= before.Partitions[i].LeaderEpoch {
			t.Fatalf("t/%d: epoch not bumped: %+v", i, p)
		}
	}

	// The isolated broker cannot commit anything; the majority can.
	if err := ctrl.CreateTopic(testkit.Context(t, 2*time.Second), "from-the-minority", 1, 1, nil); err == nil {
		t.Fatal("isolated broker created a topic")
	}
	if err := majority[1].CreateTopic(testkit.Context(t, 10*time.Second), "during-cut", 2, 2, nil); err != nil {
		t.Fatal(err)
	}
	if ctrl.IsController() {
		t.Fatal("isolated broker still believes it is the controller")
	}

	faults.Heal(cut)
	c.waitFor("healed", 30*time.Second, func(n *Node) error {
		if err := allAlive(1, 2, 3)(n); err != nil {
			return err
		}
		md := n.Metadata()
		if _, ok := md.Topics["during-cut"]; !ok {
			return errors.New("topic created during the cut not seen")
		}
		if _, ok := md.Topics["from-the-minority"]; ok {
			return errors.New("the minority's topic appeared")
		}
		return nil
	})
}

// TestWholeClusterLeave: when every broker is told to stop, the last
// broker's controlled shutdown ends as soon as the others are leaving or
// gone by a leave (there is nobody left to hand over to), instead of
// waiting out its deadline for a controller that is gone and reporting the
// handover as failed. Two brokers leave together, then the third.
func TestWholeClusterLeave(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 3)
	if err := c.controller().CreateTopic(testkit.Context(t, 10*time.Second), "t", 3, 3, nil); err != nil {
		t.Fatal(err)
	}
	leave := func(nodes ...int) {
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		for i, id := range nodes {
			n := c.nodes[id-1]
			wg.Go(func() {
				start := time.Now()
				errs[i] = n.Leave(testkit.Context(t, 10*time.Second))
				t.Logf("broker %d left in %v", id, time.Since(start).Round(time.Millisecond))
			})
		}
		wg.Wait()
		for i, id := range nodes {
			c.nodes[id-1] = nil
			if errs[i] != nil {
				t.Errorf("broker %d: %v", id, errs[i])
			}
		}
	}
	leave(1, 2)
	leave(3)
}
