package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// A broker restarted while the others committed changes is not "current"
// until it has applied up to the leader's commit index. Before, it counted
// as current as soon as it heard of a leader, since its own commit index
// only covered its stale log: the first moment MetadataCurrent held, its
// metadata could lack the changes (and the replica manager then acted on
// the stale copy — led partitions at old epochs).
func TestRestartedBrokerWaitsForLeaderCommitIndex(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 3)
	c.waitFor("every broker current", 30*time.Second, func(n *Node) error {
		if !n.MetadataCurrent() {
			return fmt.Errorf("not current")
		}
		return nil
	})
	c.stop(2)
	const topics = 40 // beyond SnapshotThreshold, so the leader snapshots meanwhile
	// Proposed through a broker that stays: it forwards to whichever
	// leads (an election may be under way if broker 3 led).
	via := c.nodes[0]
	for i := range topics {
		if err := via.CreateTopic(testkit.Context(t, 20*time.Second), fmt.Sprintf("late-%02d", i), 1, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	c.start(2)
	n := c.nodes[2]
	deadline := time.Now().Add(30 * time.Second)
	for !n.MetadataCurrent() {
		if time.Now().After(deadline) {
			t.Fatal("the restarted broker never became current")
		}
		time.Sleep(time.Millisecond)
	}
	md := n.Metadata()
	for i := range topics {
		if _, ok := md.Topics[fmt.Sprintf("late-%02d", i)]; !ok {
			t.Fatalf("current, but its metadata lacks topic late-%02d (has %d topics)", i, len(md.Topics))
		}
	}
}

// After a full cluster restart, no broker (the new leader included) counts
// as current before its metadata holds everything committed before the
// restart. Before, the new leader answered the read index with its own FSM
// index, which right after the election may still be that of its last
// snapshot; brokers then acted on a copy without the newest topics (and
// deleted those topics' local data as deleted while they were down).
func TestFullRestartWaitsForCommittedMetadata(t *testing.T) {
	t.Parallel()
	c := startTestCluster(t, 3)
	const topics = 40 // beyond SnapshotThreshold: snapshots plus log entries after them
	for i := range topics {
		if err := c.nodes[0].CreateTopic(testkit.Context(t, 20*time.Second), fmt.Sprintf("t-%02d", i), 1, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	c.waitFor("every broker has every topic", 30*time.Second, func(n *Node) error {
		if got := len(n.Metadata().Topics); got < topics {
			return fmt.Errorf("%d topics", got)
		}
		return nil
	})
	for i := range 3 {
		c.stop(i)
	}
	for i := range 3 {
		c.start(i)
	}
	checked := map[int32]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(checked) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only brokers %v became current after the full restart", checked)
		}
		for _, n := range c.running() {
			if checked[n.ID()] || !n.MetadataCurrent() {
				continue
			}
			if got := len(n.Metadata().Topics); got < topics {
				t.Fatalf("broker %d current after the full restart with %d of %d topics", n.ID(), got, topics)
			}
			checked[n.ID()] = true
		}
		time.Sleep(time.Millisecond)
	}
}
