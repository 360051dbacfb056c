package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestClusterFullRestarts stops and restarts all three broker processes at
// once, 20 times, alternating SIGTERM and SIGKILL, while an idempotent
// acks=all producer writes per-key sequence numbers and a consumer group
// reads and commits. After every round producing resumes on every
// partition; at the end every acknowledged record is in the log exactly
// once and in order, and the leader epochs stamped in each partition's
// batches never go down along the log: no broker appended as leader at an
// epoch the cluster had moved past (a restarted broker leads only once it
// has applied the Raft log up to the leader's commit index).
func TestClusterFullRestarts(t *testing.T) {
	bs, addrs := startProcCluster(t)
	const rounds = 20
	ctx := testkit.Context(t, 8*time.Minute)
	const topic, parts, group = "restarts", 3, "restarters"
	createTopicWhenFormed(ctx, t, addrs, topic, parts)
	sp := startSeqProducer(ctx, t, addrs, topic, parts)

	gr := startGroupReader(ctx, t, addrs, topic, group)

	for round := range rounds {
		sig := syscall.SIGTERM
		if round%2 == 1 {
			sig = syscall.SIGKILL
		}
		var wg sync.WaitGroup
		for _, b := range bs {
			wg.Go(func() { b.Stop(sig) })
		}
		wg.Wait()
		restarted := time.Now()
		for _, b := range bs {
			b.Start(t)
		}
		// Producing resumes on every partition: a record produced after
		// the restart is acknowledged.
		for p := range int32(parts) {
			testkit.Eventually(t, 60*time.Second, fmt.Sprintf("round %d: partition %d accepting writes again", round, p), func() bool {
				sp.mu.Lock()
				defer sp.mu.Unlock()
				if sp.err != nil {
					t.Fatalf("round %d: produce failed: %v", round, sp.err)
				}
				return sp.lastAck[p].produced.After(restarted)
			})
		}
		t.Logf("round %d (%v): writes resumed on every partition %v after the restart", round, sig, time.Since(restarted).Round(time.Millisecond))
	}
	nAcked := sp.stop(ctx, t)
	verifyLog(ctx, t, addrs, topic, sp.acked, fmt.Sprintf("after %d full restarts", rounds))
	checkLeaderEpochs(ctx, t, addrs, topic, parts)
	gr.waitRead(t, sp.acked, 60*time.Second)
	gr.stopPolling()
	checkNoISRBehindHW(t, bs)
	t.Logf("%d records acknowledged over %d full restarts, all read by the group", nAcked, rounds)
}

// checkNoISRBehindHW fails if a broker logged that a follower entered an
// ISR without every record below the high watermark: the state that lets
// an election lose acknowledged records, even when no election followed.
func checkNoISRBehindHW(t *testing.T, bs []*testkit.CoreProc) {
	t.Helper()
	for _, b := range bs {
		data, err := os.ReadFile(b.LogFile)
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.Lines(data) {
			if bytes.Contains(line, []byte("behind the high watermark")) {
				t.Errorf("broker %d: %s", b.ID, bytes.TrimSpace(line))
			}
		}
	}
}

// checkLeaderEpochs reads each partition from the start and fails if a
// batch carries a lower leader epoch than one before it: that batch was
// appended by a leader the cluster had already replaced.
func checkLeaderEpochs(ctx context.Context, t *testing.T, addrs []string, topic string, parts int32) {
	t.Helper()
	cons := newReader(t, addrs, topic)
	defer cons.Close()
	// Read up to each partition's high watermark as it is now.
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var ends kadm.ListedOffsets
	testkit.Eventually(t, 30*time.Second, "the end offsets of "+topic, func() bool {
		var err error
		ends, err = kadm.NewClient(cons).ListEndOffsets(lctx, topic)
		return err == nil && ends.Error() == nil
	})
	highest := map[int32]int32{}
	next := map[int32]int64{}
	epochs := map[int32][]int32{}
	done := func() bool {
		for p := range parts {
			if e, _ := ends.Lookup(topic, p); next[p] < e.Offset {
				return false
			}
		}
		return true
	}
	for !done() && lctx.Err() == nil {
		cons.PollFetches(lctx).EachRecord(func(r *kgo.Record) {
			p := r.Partition
			if r.LeaderEpoch < highest[p] {
				t.Errorf("%s/%d offset %d: leader epoch %d after epoch %d: appended by a stale leader", topic, p, r.Offset, r.LeaderEpoch, highest[p])
			}
			if n := len(epochs[p]); n == 0 || epochs[p][n-1] != r.LeaderEpoch {
				epochs[p] = append(epochs[p], r.LeaderEpoch)
			}
			highest[p] = max(highest[p], r.LeaderEpoch)
			next[p] = r.Offset + 1
		})
	}
	if lctx.Err() != nil {
		t.Fatalf("reading %s for leader epochs: %v (read up to %v)", topic, lctx.Err(), next)
	}
	for p := range parts {
		t.Logf("%s/%d: leader epochs along the log %v", topic, p, epochs[p])
	}
}
