package server

import (
	"context"
	"testing"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
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

// TestDivergence checks where a follower truncates for each kind of answer
// to OffsetForLeaderEpoch, on the follower's real log.
func TestDivergence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// The follower's batches (10 records each) by epoch, and its HW.
		follower []int32
		hw       int64
		// The leader's log, asked for the follower's latest epoch, and
		// where the follower's log ends after truncating.
		leader []int32
		keeps  int64
	}{
		{"same epoch, leader longer", []int32{1, 1, 3}, 20, []int32{1, 1, 3, 3}, 30},
		{"same epoch, leader shorter", []int32{1, 1, 3, 3}, 20, []int32{1, 1, 3, 5}, 30},
		// KIP-279: the follower led epoch 4 after writing two batches of
		// epoch 3; the leader, which never saw epoch 4, wrote five of
		// epoch 3. The follower's epoch-3 run ends at 40, not 80.
		{"older epoch, follower's run shorter", []int32{1, 1, 3, 3, 4, 4, 4, 4}, 20, []int32{1, 1, 3, 3, 3, 3, 3, 5}, 40},
		{"older epoch, leader's run shorter", []int32{1, 1, 3, 3, 3, 4}, 20, []int32{1, 1, 3, 5, 5, 5}, 30},
		{"follower lacks the leader's epoch", []int32{1, 1, 4, 4}, 20, []int32{1, 1, 3, 3, 3}, 20},
		{"no epoch in common", []int32{6, 6, 6}, 20, []int32{7, 7}, 20},
		{"no epoch in common, hw past our end", []int32{6}, 40, []int32{7}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, l := epochLog(t, tc.follower...), epochLog(t, tc.leader...)
			ours := f.LatestEpoch()
			ep, end := l.EndOffsetForEpoch(ours)
			if got := min(divergence(f, ours, ep, end, tc.hw), f.NextOffset()); got != tc.keeps {
				t.Fatalf("leader answered epoch %d end %d for our epoch %d: keeps %d records, want %d", ep, end, ours, got, tc.keeps)
			}
		})
	}
}
