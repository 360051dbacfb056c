package server

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
)

// TestAppendAfterLeadershipMovedRefused: a handler that looked a partition
// up while this broker led it, and appends only after leadership moved on,
// is refused. Before, the batch went into what was by then a follower's
// log, stamped with the new leader's epoch, and the follower's truncation
// (which trusts its epochs) could keep it at an offset the new leader had
// filled with other, acknowledged records.
func TestAppendAfterLeadershipMovedRefused(t *testing.T) {
	t.Parallel()
	tb, ctx, old, _ := threeWithLeader(t, "moved")
	tb.produce(ctx, old.Addr(), "moved", 1)
	p, err := old.partition("moved", 0) // what the produce handler holds
	if err != nil {
		t.Fatal(err)
	}
	// The cluster moves leadership away while the old leader is cut off,
	// and the old leader learns of it once it is back.
	tb.faults.Isolate(old.cfg.NodeID)
	tb.leading("moved", old.cfg.NodeID)
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
	leader, st := tb.leading("below", -1)
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

// twoEpochs has topic's first leader (old, at st) write offsets 0–4, cuts
// it off from the others, and has the new leader (at ls) write 5–9. The
// old leader stays cut off until the test heals it or ends.
func twoEpochs(t *testing.T, topic string) (tb *testBrokers, ctx context.Context, old *Server, st cluster.PartitionState, leader *Server, ls cluster.PartitionState) {
	t.Helper()
	tb, ctx, old, st = threeWithLeader(t, topic)
	tb.produce(ctx, old.Addr(), topic, 5)
	tb.faults.Isolate(old.cfg.NodeID)
	t.Cleanup(func() { tb.faults.Heal(old.cfg.NodeID) })
	leader, ls = tb.leading(topic, old.cfg.NodeID)
	tb.produce(ctx, leader.Addr(), topic, 5)
	return tb, ctx, old, st, leader, ls
}

// TestDivergingFollowerFetchNotCounted: a follower fetch whose last epoch
// ends earlier in the leader's log than the fetch offset is answered with
// where the logs part (DivergingEpoch, KIP-595) and not counted for the
// high watermark; a fetch that matches is counted.
func TestDivergingFollowerFetchNotCounted(t *testing.T) {
	t.Parallel()
	_, _, old, st, leader, ls := twoEpochs(t, "diverge")
	r, err := leader.replicas.lookup("diverge", 0)
	if err != nil {
		t.Fatal(err)
	}
	counted := func() int64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		if f := r.followers[old.cfg.NodeID]; f != nil {
			return f.fetchOffset
		}
		return -1
	}
	c := dialRaw(t, leader.Addr())
	fetch := func(offset int64) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.ReplicaID, req.MaxBytes = 12, old.cfg.NodeID, 1<<20
		// A long poll: a divergence is answered at once all the same.
		req.MaxWaitMillis, req.MinBytes = 30_000, 1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "diverge"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = offset, 1<<20, ls.LeaderEpoch, 0
		rp.LastFetchedEpoch = st.LeaderEpoch // the old leader's log ends in its own epoch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return c.roundTrip(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	}
	// As if the old leader had appended three more records at its epoch.
	asked := time.Now()
	sp := fetch(8)
	if waited := time.Since(asked); waited > 15*time.Second {
		t.Errorf("the diverging fetch was answered after %v: it waited out the long poll", waited)
	}
	if sp.ErrorCode != 0 || sp.DivergingEpoch.Epoch != st.LeaderEpoch || sp.DivergingEpoch.EndOffset != 5 || len(sp.RecordBatches) > 0 {
		t.Fatalf("a fetch at 8 after epoch %d, which ends at 5 here: error %d, diverging epoch %+v, %d bytes; want epoch %d ending at 5, no records",
			st.LeaderEpoch, sp.ErrorCode, sp.DivergingEpoch, len(sp.RecordBatches), st.LeaderEpoch)
	}
	if got := counted(); got == 8 {
		t.Fatal("the diverging fetch at 8 was counted for the high watermark")
	}
	sp = fetch(5)
	if sp.ErrorCode != 0 || sp.DivergingEpoch.EndOffset != -1 || len(sp.RecordBatches) == 0 {
		t.Fatalf("a fetch at 5, where the epoch ends: error %d, diverging epoch %+v, %d bytes; want the records from 5",
			sp.ErrorCode, sp.DivergingEpoch, len(sp.RecordBatches))
	}
	if got := counted(); got != 5 {
		t.Fatalf("the matching fetch at 5 counted as %d", got)
	}
}

// TestFollowerCatchesUpPastDeletedEpochs: a follower whose last epoch's
// records were all deleted (DeleteRecords) fetches on from a new leader
// that never had that epoch. The leader places an epoch older than every
// one it knows at the start of its first, as Kafka does; before, it could
// not place it, and the follower truncated nothing, fetched, and was
// refused again, for good.
func TestFollowerCatchesUpPastDeletedEpochs(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	tb.createTopic("deleted", 1, 2, 1)
	ctx := testkit.Context(t, 2*time.Minute)
	a, st := tb.leading("deleted", -1)
	b := tb.byID(st.Replicas[slices.IndexFunc(st.Replicas, func(id int32) bool { return id != st.Leader })])
	// B misses ten records, which are then deleted on A: B resets to A's
	// new start with no epochs, while A keeps the epoch of the deleted
	// records in its epoch checkpoint.
	tb.faults.Isolate(b.cfg.NodeID)
	tb.produce(ctx, a.Addr(), "deleted", 10)
	if r := deleteRecords(t, kadm.NewClient(newClient(t, a.Addr())), "deleted", 10); r.Err != nil {
		t.Fatalf("delete records: %v", r.Err)
	}
	tb.faults.Heal(b.cfg.NodeID)
	tb.waitFor("B back in the ISR", 30*time.Second, func() bool {
		ps, _ := a.Cluster().PartitionState("deleted", 0)
		return slices.Contains(ps.ISR, b.cfg.NodeID)
	})
	// B leads a new epoch; A follows it with its old epoch as its latest.
	tb.faults.Isolate(a.cfg.NodeID)
	leader, _ := tb.leading("deleted", a.cfg.NodeID)
	tb.faults.Heal(a.cfg.NodeID)
	tb.produce(ctx, leader.Addr(), "deleted", 5)
	al, err := a.Topics().Partition("deleted", 0)
	if err != nil {
		t.Fatal(err)
	}
	tb.waitFor("A fetches the new leader's records", 30*time.Second, func() bool { return al.NextOffset() == 15 })
	tb.waitFor("A back in the ISR", 30*time.Second, func() bool {
		ps, _ := leader.Cluster().PartitionState("deleted", 0)
		return slices.Contains(ps.ISR, a.cfg.NodeID)
	})
}

// TestFollowerTruncatesAtDivergingEpoch drives a follower's fetcher by hand
// past its first truncation, with records the leader never had at the end
// of its log: the leader's DivergingEpoch must make it cut them, and a
// batch fetched for an epoch this broker does not follow must be refused.
// It then lets the broker follow for real and checks that its log matches
// the leader's, epoch for epoch.
func TestFollowerTruncatesAtDivergingEpoch(t *testing.T) {
	t.Parallel()
	tb, ctx, old, st, leader, ls := twoEpochs(t, "followdiv")
	r, err := old.replicas.lookup("followdiv", 0)
	if err != nil {
		t.Fatal(err)
	}
	// As if the cut-off leader had written three more records at its
	// epoch: offsets 5–7, where the new leader holds others.
	if _, err := r.log.Append(ctx, buildBatch(t, 3, -1, 0, 8), storage.AppendOptions{LeaderEpoch: st.LeaderEpoch}); err != nil {
		t.Fatal(err)
	}
	// A fetcher that has already truncated (so that only the fetch's
	// DivergingEpoch can find the extra records), on a connection that
	// bypasses the isolation: the isolated broker still believes it leads.
	raw, err := net.Dial("tcp", leader.Addr())
	if err != nil {
		t.Fatal(err)
	}
	f := &fetcher{r: r, leader: leader.cfg.NodeID, addr: leader.Addr(), epoch: ls.LeaderEpoch,
		conn: &replConn{c: raw, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID("test-fetcher"))}}
	defer f.close()
	truncated := true
	if err := f.step(ctx, &truncated); err != nil {
		t.Fatalf("the diverging fetch: %v", err)
	}
	if got := r.log.NextOffset(); got != 5 || !truncated {
		t.Fatalf("after the leader's DivergingEpoch (epoch %d ends at 5) the follower's log ends at %d (truncated %v), want 5",
			st.LeaderEpoch, got, truncated)
	}
	// The fetch at 5 matches the leader's log and brings 5–9 of the new
	// epoch, which this broker does not follow yet: they must not land.
	if err := f.step(ctx, &truncated); !errors.Is(err, errFollowingEnded) {
		t.Fatalf("a batch fetched for epoch %d while this broker leads epoch %d: %v, want errFollowingEnded",
			ls.LeaderEpoch, st.LeaderEpoch, err)
	}
	if got := r.log.NextOffset(); got != 5 {
		t.Fatalf("the refused batch moved the log end to %d", got)
	}
	f.close()
	tb.faults.Heal(old.cfg.NodeID)
	ll, err := leader.Topics().Partition("followdiv", 0)
	if err != nil {
		t.Fatal(err)
	}
	tb.waitFor("the old leader caught up", 30*time.Second, func() bool { return r.log.NextOffset() == ll.NextOffset() })
	for off := int64(0); off < ll.NextOffset(); off++ {
		if fe, le := epochAt(t, r.log, off), epochAt(t, ll, off); fe != le {
			t.Errorf("offset %d: the follower holds epoch %d, the leader epoch %d", off, fe, le)
		}
	}
}
