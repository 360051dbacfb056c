package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// TestFetcherKeepsLogAheadOfStaleLeader: a follower whose log already holds
// records of epoch 5 and is told (by metadata still being replayed after a
// restart) to follow a leader at epoch 1 must neither ask that leader nor
// truncate: the old leader knows no epoch 5 and would answer "undefined",
// which used to truncate the whole log (TestClusterLeaderKills lost a
// partition's 23,840 acknowledged records after a full cluster restart).
func TestFetcherKeepsLogAheadOfStaleLeader(t *testing.T) {
	t.Parallel()
	l, err := storage.OpenLog(t.TempDir(), storage.LogConfig{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for epoch := int32(1); epoch <= 5; epoch++ {
		b, err := recordbatch.Build([]recordbatch.Record{{Value: []byte("v")}}, recordbatch.NoProducer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(context.Background(), b, storage.AppendOptions{LeaderEpoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	end := l.NextOffset()
	// No connection and no replica manager: the check comes before any
	// request, so a call that got further would fail differently.
	f := &fetcher{r: &replica{log: l, topic: "t", part: 0}, leader: 2, epoch: 1}
	if _, err := f.truncate(context.Background()); !errors.Is(err, errStaleLeaderEpoch) {
		t.Fatalf("truncate under a stale leader epoch: %v, want errStaleLeaderEpoch", err)
	}
	if l.NextOffset() != end || l.LatestEpoch() != 5 {
		t.Fatalf("log changed: end %d (was %d), latest epoch %d", l.NextOffset(), end, l.LatestEpoch())
	}
}

// A follower reset to a leader start inside a batch (DeleteRecords) gets the
// whole batch holding it: its empty log restarts at the batch's base instead
// of refusing the append forever, and then takes the leader's start.
func TestFetcherAppendsAcrossMidBatchStart(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	leader, err := storage.OpenLog(t.TempDir(), storage.LogConfig{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	for i := 0; i < 3; i++ {
		b, _ := recordbatch.Build([]recordbatch.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}, {Value: []byte("d")}}, recordbatch.NoProducer)
		if _, err := leader.Append(context.Background(), b, storage.AppendOptions{LeaderEpoch: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leader.DeleteRecordsBefore(6); err != nil { // inside the batch [4, 8)
		t.Fatal(err)
	}
	follower, err := storage.OpenLog(t.TempDir(), storage.LogConfig{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	if err := follower.ResetTo(leader.StartOffset()); err != nil { // what an OFFSET_OUT_OF_RANGE fetch does
		t.Fatal(err)
	}
	b, err := leader.Read(follower.NextOffset(), 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendFetched(context.Background(), follower, b); err != nil {
		t.Fatalf("append the batch holding the start: %v", err)
	}
	if _, err := follower.DeleteRecordsBefore(leader.StartOffset()); err != nil {
		t.Fatal(err)
	}
	if follower.StartOffset() != 6 || follower.NextOffset() != 12 {
		t.Fatalf("follower log [%d, %d), want [6, 12)", follower.StartOffset(), follower.NextOffset())
	}
}
