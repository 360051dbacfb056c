package server

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestAppendAfterLeadershipMovedRefused: a handler that looked a partition
// up while this broker led it, and appends only after leadership moved on,
// is refused. Before, the batch went into what was by then a follower's
// log, stamped with the new leader's epoch, and the follower's truncation
// (which trusts its epochs) could keep it at an offset the new leader had
// filled with other, acknowledged records.
func TestAppendAfterLeadershipMovedRefused(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	tb.createTopic("moved", 1, 3, 2)
	ctx := testkit.Context(t, 2*time.Minute)
	st, _ := tb.srvs[0].Cluster().PartitionState("moved", 0)
	old := tb.byID(st.Leader)
	prod := newClient(t, old.Addr(), kgo.DefaultProduceTopic("moved"), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	p, err := old.partition("moved", 0) // what the produce handler holds
	if err != nil {
		t.Fatal(err)
	}
	// The cluster moves leadership away while the old leader is cut off,
	// and the old leader learns of it once it is back.
	tb.faults.Isolate(old.cfg.NodeID)
	tb.waitFor("another leader", 30*time.Second, func() bool {
		s, _ := tb.other(old.cfg.NodeID).Cluster().PartitionState("moved", 0)
		return s.Leader >= 0 && s.Leader != old.cfg.NodeID
	})
	tb.faults.Heal(old.cfg.NodeID)
	tb.waitFor("the old leader following", 30*time.Second, func() bool {
		return p.r.state().Leader != old.cfg.NodeID && p.r.state().LeaderEpoch > p.epoch
	})
	_, err = p.Append(ctx, buildBatch(t, 1, -1, 0, 8), false)
	if !errors.Is(err, errNotLeader) {
		t.Fatalf("append through a partition looked up at epoch %d, now led by %d at epoch %d: %v, want not leader",
			p.epoch, p.r.state().Leader, p.r.state().LeaderEpoch, err)
	}
}

// TestAckAfterISRBelowMinRefused: an acks=all produce whose batch reaches
// the high watermark only because the ISR shrank below
// min.insync.replicas while it waited is answered
// NOT_ENOUGH_REPLICAS_AFTER_APPEND, not acknowledged: fewer copies than
// promised hold it.
func TestAckAfterISRBelowMinRefused(t *testing.T) {
	t.Parallel()
	tb := startTestClusterWith(t, 3, func(_ int, cfg *Config) {
		cfg.Replication.AckTimeout = time.Minute // the ISR shrinks first
	})
	tb.createTopic("below", 1, 2, 2)
	st, _ := tb.srvs[0].Cluster().PartitionState("below", 0)
	leader := tb.byID(st.Leader)
	tb.waitFor("the leader ready to serve below/0", 30*time.Second, func() bool {
		ps, _ := leader.Cluster().PartitionState("below", 0)
		return ps.Leader == st.Leader && leader.Readiness().Ready
	})
	c := dialRaw(t, leader.Addr())
	if got := produceOne(t, c, -1, "below", 0, buildBatch(t, 3, -1, 0, 10)); got.ErrorCode != 0 {
		t.Fatalf("acks=all with the full ISR: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	var follower int32
	for _, id := range st.Replicas {
		if id != st.Leader {
			follower = id
		}
	}
	tb.faults.Isolate(follower)
	defer tb.faults.Heal(follower)
	got := produceOne(t, c, -1, "below", 0, buildBatch(t, 3, -1, 0, 10))
	if got.ErrorCode != kerr.NotEnoughReplicasAfterAppend.Code {
		ps, _ := leader.Cluster().PartitionState("below", 0)
		t.Fatalf("acks=all while the ISR shrank to %v (min.insync.replicas 2): %v, want NOT_ENOUGH_REPLICAS_AFTER_APPEND",
			ps.ISR, kerr.ErrorForCode(got.ErrorCode))
	}
}
