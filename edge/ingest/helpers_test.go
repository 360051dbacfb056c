package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/edge/auth"
	"github.com/tributary-io/tributary/edge/topicmap"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
)

func newTestHook(t testing.TB) *Hook { return newTestHookConfig(t, Config{}) }

// newTestHookConfig is a hook with cfg over fresh logs in a temporary
// directory, drained when the test (benchmark, fuzz target) ends.
func newTestHookConfig(t testing.TB, cfg Config) *Hook {
	t.Helper()
	dir := t.TempDir()
	store, err := meta.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	topics, err := storage.OpenTopics(filepath.Join(dir, "logs"), store, storage.LogConfig{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topics.Close(); store.Close() })
	a, err := auth.New(auth.Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := topicmap.New(topicmap.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(context.Background(), cfg, topics, a, m, prometheus.NewRegistry(), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Drain) // stops the partition writers before the logs close
	return h
}

func publish(qos byte, seq int) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: "sensors/d1/r",
		Payload: []byte(fmt.Sprintf(`{"device":"d1","seq":%d}`, seq)), PacketID: 1}
}

func stored(t *testing.T, h *Hook) int64 {
	var n int64
	for _, ti := range h.topics.List() {
		for p := int32(0); p < ti.Partitions; p++ {
			l, err := h.topics.Partition(ti.Name, p)
			if err != nil {
				t.Fatal(err)
			}
			n += l.NextOffset() - l.StartOffset()
		}
	}
	return n
}

// failAppends makes h's appends fail with err while *fail is true.
func failAppends(h *Hook, fail *bool, err error) {
	h.appendBatch = func(l storage.PartitionLog, ctx context.Context, b []byte, o storage.AppendOptions) (storage.AppendResult, error) {
		if *fail {
			return storage.AppendResult{}, err
		}
		return l.Append(ctx, b, o)
	}
}
