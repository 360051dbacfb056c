package server

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestISRJoinerHoldsHighWatermark: a follower a leader proposes to add to
// the ISR counts for the high watermark from the moment it is proposed.
// The leader picks it because it has everything below the HW; if the HW
// could pass it while the proposal is in flight, the follower would enter
// the ISR without records already acknowledged, and could later be elected
// without them. (A full-restart test lost 40 acknowledged records so: the
// follower became the last ISR member when the other two stopped.)
//
// The test cuts the joiner off right before the proposal leaves and
// produces a record that the leader and the other follower then hold.
func TestISRJoinerHoldsHighWatermark(t *testing.T) {
	t.Parallel()
	tb, ctx, leader, st := threeWithLeader(t, "join")
	// The joiner: a follower, and not the controller, so that cutting it
	// off leaves the cluster's metadata moving.
	ctrl, _ := leader.Cluster().Controller()
	joiner := st.Replicas[slices.IndexFunc(st.Replicas, func(id int32) bool { return id != st.Leader && id != ctrl })]
	tb.produce(ctx, leader.Addr(), "join", 1)

	// Take the joiner out of the ISR.
	tb.faults.Isolate(joiner)
	tb.waitFor("the ISR without the isolated follower", 30*time.Second, func() bool {
		ps, _ := leader.Cluster().PartitionState("join", 0)
		return !slices.Contains(ps.ISR, joiner)
	})

	prod := newClient(t, leader.Addr(), kgo.SeedBrokers(tb.addrs()...), kgo.DefaultProduceTopic("join"),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	acked := make(chan error, 16)
	checked := make(chan struct{})
	var mu sync.Mutex // one check at a time, until one is conclusive
	done, attempts := false, 0
	hook := func(r *replica, join []int32) {
		if r.topic != "join" || !slices.Contains(join, joiner) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if done || attempts == cap(acked) {
			return
		}
		attempts++
		epoch, _ := r.leading()
		var other int32
		for _, id := range r.state().Replicas {
			if id != r.self && id != joiner {
				other = id
			}
		}
		tb.faults.Isolate(joiner)
		defer tb.faults.Heal(joiner)
		base := r.log.NextOffset()
		prod.Produce(ctx, &kgo.Record{Value: []byte("held")}, func(_ *kgo.Record, err error) { acked <- err })
		// Once the leader has fsynced the record and the other follower
		// has fetched it, the HW would be past the joiner if only the ISR
		// counted.
		var hw, joinerAt int64
		moved := false
		ok := testkit.Poll(30*time.Second, func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.st.Leader != r.self || r.st.LeaderEpoch != epoch {
				moved = true // leadership moved (a loaded machine): the next proposal is checked
				return true
			}
			end := r.log.NextOffset()
			o := r.followers[other]
			if end <= base || r.log.SyncedOffset() < end || o == nil || o.fetchOffset < end {
				return false
			}
			r.updateHWLocked()
			hw, joinerAt = r.hw, r.followers[joiner].fetchOffset
			return true
		})
		switch {
		case moved:
			return
		case !ok:
			t.Errorf("the record produced at %d did not reach the leader's disk and follower %d", base, other)
		case hw > joinerAt:
			t.Errorf("high watermark %d passed follower %d's fetch offset %d while it was proposed for the ISR", hw, joiner, joinerAt)
		}
		done = true
		close(checked)
	}
	// On every broker: under load, a false failure detection can move
	// leadership, and then another leader proposes the joiner.
	for _, s := range tb.srvs {
		s.replicas.beforeISRProposal.Store(&hook)
	}
	t.Cleanup(func() {
		for _, s := range tb.srvs {
			s.replicas.beforeISRProposal.Store(nil)
		}
	})
	tb.faults.Heal(joiner)

	select {
	case <-checked:
	case <-ctx.Done():
		t.Fatalf("no leader proposed follower %d for the ISR", joiner)
	}
	mu.Lock()
	n := attempts
	mu.Unlock()
	for range n {
		select {
		case err := <-acked:
			if err != nil {
				t.Fatalf("produce while the follower was proposed: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("a record produced while the follower was proposed was never acknowledged")
		}
	}
	tb.waitFor("the follower back in the ISR", 30*time.Second, func() bool {
		ps, _ := tb.srvs[0].Cluster().PartitionState("join", 0)
		return slices.Contains(ps.ISR, joiner)
	})
}

// TestFetchOfAnotherEpochNotCounted: a follower fetch checked against
// another leader epoch than the current one does not move the follower's
// recorded offset, so a fetch from before the follower truncated cannot
// raise the high watermark.
func TestFetchOfAnotherEpochNotCounted(t *testing.T) {
	t.Parallel()
	tb, ctx, leader, st := threeWithLeader(t, "epochs")
	tb.produce(ctx, leader.Addr(), "epochs", 1)
	r, err := leader.replicas.lookup("epochs", 0)
	if err != nil {
		t.Fatal(err)
	}
	follower := st.ISR[slices.IndexFunc(st.ISR, func(id int32) bool { return id != st.Leader })]
	fetched := func() int64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		if f := r.followers[follower]; f != nil {
			return f.fetchOffset
		}
		return -1
	}
	tb.waitFor("the follower's fetch at the log end", 10*time.Second, func() bool { return fetched() == 1 })
	// The follower stops fetching, so only the calls below could move it.
	tb.faults.Isolate(follower)
	defer tb.faults.Heal(follower)
	cur := r.state().LeaderEpoch
	r.followerFetched(follower, cur+1, 0)
	if cur > 0 {
		r.followerFetched(follower, cur-1, 0)
	}
	if got := fetched(); got != 1 {
		t.Fatalf("fetches of epochs other than %d moved follower %d's offset to %d", cur, follower, got)
	}
	// A fetch of the current epoch counts. (Polled: a long poll the
	// follower sent before it was cut off may still record offset 1.)
	if !testkit.Poll(10*time.Second, func() bool {
		r.followerFetched(follower, cur, 0)
		return fetched() == 0
	}) {
		t.Fatalf("a fetch of the current epoch %d left follower %d's offset at %d, want 0", cur, follower, fetched())
	}
}
