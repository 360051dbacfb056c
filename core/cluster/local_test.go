package cluster

import (
	"context"
	"errors"
	"testing"
)

// TestLocalIsAClusterOfOne: the in-process cluster places, refuses and
// remembers exactly as the Raft-backed one does, with this broker as the
// only broker, leader and controller.
func TestLocalIsAClusterOfOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var saved []byte
	save := func(b []byte) error { saved = append([]byte(nil), b...); return nil }
	cfg := Config{BrokerID: 7, KafkaAddr: "127.0.0.1:9092", OffsetsPartitions: 4}
	l, err := NewLocal(cfg, nil, save, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CreateTopic(ctx, "t", 3, -1, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.CreateTopic(ctx, "t", 3, -1, nil); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("create again: %v, want ErrTopicExists", err)
	}
	if err := l.CreateTopic(ctx, "r3", 1, 3, nil); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Fatalf("rf 3 on one broker: %v, want ErrInvalidReplicationFactor", err)
	}
	tp, ok := l.Topic("t")
	if !ok || len(tp.Partitions) != 3 || tp.ID == "" {
		t.Fatalf("topic: %+v", tp)
	}
	for _, p := range tp.Partitions {
		if p.Leader != 7 || len(p.ISR) != 1 || p.ISR[0] != 7 {
			t.Fatalf("partition %+v: want leader and ISR {7}", p)
		}
	}
	b, err := l.Coordinator(ctx, "g")
	if err != nil || b.ID != 7 {
		t.Fatalf("coordinator: %+v, %v", b, err)
	}
	if id, ok := l.Controller(); !ok || id != 7 || !l.MetadataCurrent() {
		t.Fatalf("controller %d %v, current %v", id, ok, l.MetadataCurrent())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteTopic(ctx, "t"); !errors.Is(err, ErrClosed) {
		t.Fatalf("delete after close: %v, want ErrClosed", err)
	}

	// A restart at another address keeps topics, ids and epochs.
	cfg.KafkaAddr = "127.0.0.1:9093"
	l2, err := NewLocal(cfg, saved, save, nil)
	if err != nil {
		t.Fatal(err)
	}
	tp2, ok := l2.Topic("t")
	if !ok || tp2.ID != tp.ID || tp2.Partitions[0].LeaderEpoch != tp.Partitions[0].LeaderEpoch {
		t.Fatalf("after restart: %+v, want %+v", tp2, tp)
	}
	if !l2.HasTopic(OffsetsTopic) {
		t.Fatal("offsets topic lost over restart")
	}
	if b := l2.Metadata().Brokers[7]; b == nil || b.KafkaAddr != "127.0.0.1:9093" || !b.Alive {
		t.Fatalf("broker after restart: %+v", b)
	}
}
