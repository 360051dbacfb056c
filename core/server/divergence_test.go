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
// fetcher's truncate does (asking again while divergence is not done, then
// never keeping more than the leader's log end), and checks where the
// follower's log ends and that every batch it keeps carries the leader
// epoch of the leader's batch at the same offset.
func TestDivergence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// The follower's and the leader's batches (10 records each) by
		// epoch, and where the follower's log ends after truncating.
		follower, leader []int32
		keeps            int64
	}{
		{"same epoch, leader longer", []int32{1, 1, 3}, []int32{1, 1, 3, 3}, 30},
		{"same epoch, leader shorter", []int32{1, 1, 3, 3}, []int32{1, 1, 3, 5}, 30},
		// KIP-279: the follower led epoch 4 after writing two batches of
		// epoch 3; the leader, which never saw epoch 4, wrote five of
		// epoch 3. The follower's epoch-3 run ends at 40, not 70.
		{"older epoch, follower's run shorter", []int32{1, 1, 3, 3, 4, 4, 4, 4}, []int32{1, 1, 3, 3, 3, 3, 3, 5}, 40},
		{"older epoch, leader's run shorter", []int32{1, 1, 3, 3, 3, 4}, []int32{1, 1, 3, 5, 5, 5}, 30},
		// The follower never had epoch 3, so it asks again about epoch 1,
		// whose runs end at 30 (follower) and 20 (leader).
		{"follower lacks the leader's epoch", []int32{1, 1, 1, 4}, []int32{1, 1, 3, 3, 3}, 20},
		{"follower lacks it, runs end alike", []int32{1, 1, 4, 4}, []int32{1, 1, 3, 3, 3}, 20},
		// An unclean election's leader, without the follower's epochs.
		{"every epoch of ours newer", []int32{2, 2}, []int32{1, 3}, 0},
		{"no epoch in common", []int32{6, 6, 6}, []int32{7, 7}, 0},
		{"leader without epochs, shorter", []int32{1, 1, 1}, []int32{-1, -1}, 0},
		{"we without epochs, longer", []int32{-1, -1, -1}, []int32{1, 1}, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, l := epochLog(t, tc.follower...), epochLog(t, tc.leader...)
			cut := func(to int64, needed bool) {
				t.Helper()
				if !needed {
					return
				}
				if err := cutLog(f, to); err != nil {
					t.Fatal(err)
				}
			}
			for round := 0; ; round++ {
				if round == len(tc.follower)+1 {
					t.Fatalf("truncation did not finish in %d rounds", round)
				}
				if ours := f.LatestEpoch(); ours >= 0 {
					ep, end := l.EndOffsetForEpoch(ours)
					to, done := divergence(f, ep, end)
					cut(to, mustCut(f, to))
					if !done {
						continue
					}
				}
				cut(l.NextOffset(), l.NextOffset() < f.NextOffset())
				break
			}
			if got := f.NextOffset(); got != tc.keeps {
				t.Fatalf("the follower keeps %d records, want %d", got, tc.keeps)
			}
			for off := int64(0); off < f.NextOffset(); off += 10 {
				if fe, le := epochAt(t, f, off), epochAt(t, l, off); fe != le && fe >= 0 {
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
