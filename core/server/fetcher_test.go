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
	if err := f.truncate(context.Background()); !errors.Is(err, errStaleLeaderEpoch) {
		t.Fatalf("truncate under a stale leader epoch: %v, want errStaleLeaderEpoch", err)
	}
	if l.NextOffset() != end || l.LatestEpoch() != 5 {
		t.Fatalf("log changed: end %d (was %d), latest epoch %d", l.NextOffset(), end, l.LatestEpoch())
	}
}
