package bridge

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// TestKeepLocal: a stream marked local (forward: aggregates-only) is not
// forwarded while the others are; the retention hold New put on its logs
// is released, so its own retention trims it, while a forwarded stream's
// log stays held at the bridge's cursor.
func TestKeepLocal(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	core := newCore(t, addr, addr)
	core.start()
	e := openEdge(t, t.TempDir(), 2)
	// The local stream: small segments and a retention far below what it holds.
	const raw = "raw"
	if err := e.topics.Create(raw, 2, storage.LogConfig{SegmentBytes: 4 << 10, RetentionBytes: 8 << 10}); err != nil {
		t.Fatal(err)
	}
	b, err := New(testBridgeConfig(addr), e.topics, e.store, prometheus.NewRegistry(), testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	b.KeepLocal(raw)
	for p := int32(0); p < 2; p++ {
		if l, _ := e.topics.Partition(raw, p); l.RetentionFloor() != 0 {
			t.Fatalf("before Run, raw-%d floor = %d; New should hold every log", p, l.RetentionFloor())
		}
	}
	appendRaw := func(n int) {
		for i := 0; i < n; i++ {
			batch, err := recordbatch.Build([]recordbatch.Record{{Timestamp: time.Now().UnixMilli(),
				Key: []byte(fmt.Sprint("dev-", i%2)), Value: make([]byte, 200)}}, recordbatch.NoProducer)
			if err != nil {
				t.Fatal(err)
			}
			l, _ := e.topics.Partition(raw, int32(i%2))
			if _, err := l.Append(context.Background(), batch, storage.AppendOptions{LeaderEpoch: -1, Durable: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendRaw(400)
	for i := 0; i < 50; i++ {
		if err := e.appendReading(fmt.Sprint("d", i%5), uint64(i/5), 0); err != nil {
			t.Fatal(err)
		}
	}
	defer testkit.Run(t, "bridge", b.Run)()

	testkit.Eventually(t, 20*time.Second, "the core to hold the forwarded stream's 50 records", func() bool {
		return core.records(stream) >= 50
	})
	for p := int32(0); p < 2; p++ {
		l, _ := e.topics.Partition(raw, p)
		testkit.Eventually(t, 20*time.Second, fmt.Sprintf("raw-%d's retention hold to go", p), func() bool {
			return l.RetentionFloor() == math.MaxInt64
		})
	}
	// A partition added later is released too.
	if err := e.topics.AddPartitions(raw, 3); err != nil {
		t.Fatal(err)
	}
	l2, _ := e.topics.Partition(raw, 2)
	testkit.Eventually(t, 20*time.Second, "raw-2's (added later) retention hold to go", func() bool {
		return l2.RetentionFloor() == math.MaxInt64
	})
	appendRaw(100)
	e.topics.MaintainOnce()
	for p := int32(0); p < 2; p++ {
		l, _ := e.topics.Partition(raw, p)
		if l.StartOffset() == 0 {
			t.Errorf("raw-%d: retention removed nothing (size %d, floor %d)", p, l.Size(), l.RetentionFloor())
		}
	}
	if n := core.records(raw); n != 0 {
		t.Errorf("core holds %d records of the local stream", n)
	}
	for _, ps := range b.Status().Partitions {
		if ps.Stream == raw {
			t.Errorf("status lists a forwarder for the local stream: %+v", ps)
		}
	}
	// The forwarded stream keeps its hold: floor = cursor, not released.
	for p := int32(0); p < e.partitions; p++ {
		l, _ := e.topics.Partition(stream, p)
		if f := l.RetentionFloor(); f == math.MaxInt64 {
			t.Errorf("%s-%d: forwarded stream lost its retention hold", stream, p)
		}
	}
}
