package server

import (
	"context"
	"testing"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// epochLog is a real log whose batches of ten records carry the leader
// epochs given, one batch per entry.
func epochLog(t *testing.T, epochs ...int32) *storage.Log {
	t.Helper()
	l, err := storage.OpenLog(t.TempDir(), storage.LogConfig{}, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	for _, e := range epochs {
		if _, err := l.Append(context.Background(), buildBatch(t, 10, -1, 0, 8), storage.AppendOptions{LeaderEpoch: e}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// TestDivergence runs a follower's truncation against a leader's log for
// each kind of answer to OffsetForLeaderEpoch, on real logs, as the
// fetcher does (asking again while divergence is not done), and checks
// where the follower's log ends and that every batch it keeps carries the
// leader epoch of the leader's batch at the same offset.
func TestDivergence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// The follower's batches (10 records each) by epoch, and its HW.
		follower []int32
		hw       int64
		// The leader's log, and where the follower's log ends after
		// truncating.
		leader []int32
		keeps  int64
		// unclean: the leader was elected without the committed records
		// (unclean.leader.election.enable), so the logs below the HW
		// differ; the follower keeps them, as Kafka's does.
		unclean bool
	}{
		{"same epoch, leader longer", []int32{1, 1, 3}, 20, []int32{1, 1, 3, 3}, 30, false},
		{"same epoch, leader shorter", []int32{1, 1, 3, 3}, 20, []int32{1, 1, 3, 5}, 30, false},
		// KIP-279: the follower led epoch 4 after writing two batches of
		// epoch 3; the leader, which never saw epoch 4, wrote five of
		// epoch 3. The follower's epoch-3 run ends at 40, not 70.
		{"older epoch, follower's run shorter", []int32{1, 1, 3, 3, 4, 4, 4, 4}, 20, []int32{1, 1, 3, 3, 3, 3, 3, 5}, 40, false},
		{"older epoch, leader's run shorter", []int32{1, 1, 3, 3, 3, 4}, 20, []int32{1, 1, 3, 5, 5, 5}, 30, false},
		// The follower never had epoch 3, so it asks again about epoch 1,
		// whose runs end at 30 (follower) and 20 (leader).
		{"follower lacks the leader's epoch", []int32{1, 1, 1, 4}, 10, []int32{1, 1, 3, 3, 3}, 20, false},
		{"follower lacks it, runs end alike", []int32{1, 1, 4, 4}, 20, []int32{1, 1, 3, 3, 3}, 20, false},
		{"every epoch of ours newer", []int32{2, 2}, 0, []int32{1, 3}, 0, false},
		{"no epoch in common", []int32{6, 6, 6}, 20, []int32{7, 7}, 20, true},
		{"no epoch in common, hw past our end", []int32{6}, 40, []int32{7, 7, 7, 7, 7}, 10, true},
		{"no epoch in common, hw past the leader's end", []int32{6, 6, 6, 6}, 40, []int32{7, 7}, 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, l := epochLog(t, tc.follower...), epochLog(t, tc.leader...)
			for round := 0; ; round++ {
				if round == len(tc.follower)+1 {
					t.Fatalf("truncation did not finish in %d rounds", round)
				}
				ours := f.LatestEpoch()
				if ours < 0 {
					break
				}
				ep, end := l.EndOffsetForEpoch(ours)
				to, done := divergence(f, ep, end)
				if ep < 0 || end < 0 {
					to, done = keepCommitted(f, tc.hw, l.NextOffset()), true
				}
				if to < f.NextOffset() {
					if err := f.TruncateTo(to); err != nil {
						t.Fatal(err)
					}
				}
				if done {
					break
				}
			}
			if got := f.NextOffset(); got != tc.keeps {
				t.Fatalf("the follower keeps %d records, want %d", got, tc.keeps)
			}
			for off := int64(0); off < f.NextOffset() && !tc.unclean; off += 10 {
				if fe, le := epochAt(t, f, off), epochAt(t, l, off); fe != le {
					t.Errorf("offset %d: the follower keeps epoch %d, the leader has epoch %d", off, fe, le)
				}
			}
		})
	}
}

// epochAt is the leader epoch of the batch at off.
func epochAt(t *testing.T, l *storage.Log, off int64) int32 {
	t.Helper()
	b, err := l.Read(off, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := recordbatch.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h.LeaderEpoch
}
