package server

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
)

// Issue 12, scenario 5: a device whose clock runs 48 h behind. With the
// core's 1 h time retention its readings were deleted within seconds of
// arrival (CreateTime semantics, and no other timestamp type). Now time
// retention also waits for the data's append time, a topic can take
// LogAppendTime, and before/after.max.ms can refuse such timestamps.
func TestDeviceClockBehind(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.Log.RetentionAge = time.Hour
	cfg.Log.SegmentBytes = 4096
	srv := startServer(t, cfg)
	admin := newClient(t, srv.Addr())
	createTopic(t, admin, "behind", 1, nil)
	createTopic(t, admin, "appendtime", 1, map[string]string{"message.timestamp.type": "LogAppendTime"})
	createTopic(t, admin, "bounded", 1, map[string]string{"message.timestamp.before.max.ms": "3600000"})

	ctx := testkit.Context(t, 30*time.Second)
	deviceTime := time.Now().Add(-48 * time.Hour)
	prod := newClient(t, srv.Addr(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchMaxBytes(2048))
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 1400
	for _, topic := range []string{"behind", "appendtime"} {
		var recs []*kgo.Record
		for i := range n {
			v := make([]byte, 100) // incompressible: the readings fill several segments
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			recs = append(recs, &kgo.Record{Topic: topic, Value: v, Timestamp: deviceTime.Add(time.Duration(i) * time.Millisecond)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	err := prod.ProduceSync(ctx, &kgo.Record{Topic: "bounded", Value: []byte("x"), Timestamp: deviceTime}).FirstErr()
	if !errors.Is(err, kerr.InvalidTimestamp) {
		t.Errorf("48 h old record into a topic with before.max.ms 1 h: %v, want INVALID_TIMESTAMP", err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "bounded", Value: []byte("y")}).FirstErr(); err != nil {
		t.Errorf("a current record into the bounded topic: %v", err)
	}

	srv.Topics().MaintainOnce() // time retention, 1 h
	for _, topic := range []string{"behind", "appendtime"} {
		cl := newClient(t, srv.Addr(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		got := 0
		for got < n {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: %d of %d records left after retention", topic, got, n)
			}
			fs.EachRecord(func(r *kgo.Record) {
				got++
				age := time.Since(r.Timestamp)
				switch topic {
				case "behind": // CreateTime: the device's own time is kept
					if age < 47*time.Hour {
						t.Fatalf("%s: record timestamp %v, want the device's", topic, r.Timestamp)
					}
				case "appendtime":
					if age > time.Minute || age < -time.Minute {
						t.Fatalf("%s: record timestamp %v, want the append time", topic, r.Timestamp)
					}
				}
			})
		}
	}
}
