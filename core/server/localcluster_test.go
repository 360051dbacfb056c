package server

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// writeLegacyDataDir lays out a data directory as a single broker wrote it
// before it kept cluster metadata: topics only in storage (meta.db and
// logs/), configs by name in the meta store, one record per partition.
func writeLegacyDataDir(t *testing.T, dir string) {
	t.Helper()
	store, err := meta.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	topics, err := storage.OpenTopics(filepath.Join(dir, "logs"), store, storage.LogConfig{}, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := topics.Create("old", 2, storage.LogConfig{RetentionBytes: 123456}); err != nil {
		t.Fatal(err)
	}
	names, _ := json.Marshal(map[string]string{"retention.bytes": "123456"})
	if err := store.PutValue(legacyTopicConfigKey("old"), names); err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		l, err := topics.Partition("old", p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := recordbatch.Build([]recordbatch.Record{{Timestamp: time.Now().UnixMilli(), Value: fmt.Appendf(nil, "p%d", p)}}, recordbatch.NoProducer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(context.Background(), b, storage.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := topics.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLegacyDataDirIsAdopted: a data directory from before the cluster of
// one opens with its topics, partitions, configs, data and topic ids, and
// keeps them over a second restart (adopted once, not again).
func TestLegacyDataDirIsAdopted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLegacyDataDir(t, dir)
	for round := range 2 {
		srv := startServer(t, testConfig(dir))
		adm := kadm.NewClient(newClient(t, srv.Addr()))
		td, err := adm.ListTopics(ctxT(t), "old")
		if err != nil {
			t.Fatal(err)
		}
		d := td["old"]
		if d.Err != nil || len(d.Partitions) != 2 || d.ID != kadm.TopicID(topicID("old")) {
			t.Fatalf("round %d: topic %+v (id want %x)", round, d, topicID("old"))
		}
		if v, _ := describeTopicConfig(t, adm, "old", "retention.bytes"); v != "123456" {
			t.Fatalf("round %d: retention.bytes = %q", round, v)
		}
		cl := newClient(t, srv.Addr(), kgo.ConsumeTopics("old"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		got := map[string]bool{}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for len(got) < 2 && ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
		}
		cancel()
		if !got["p0"] || !got["p1"] {
			t.Fatalf("round %d: consumed %v, want p0 and p1", round, got)
		}
		cl.Close()
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
