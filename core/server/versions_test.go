package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

// TestClientVersionEras pins franz-go to the request versions of older Kafka
// releases (as Sarama does from its configured version) and to the newest,
// and round-trips records through a consumer group at each.
func TestClientVersionEras(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.Groups.InitialRebalanceDelay = 50 * time.Millisecond
	srv := startServer(t, cfg)
	for _, era := range []struct {
		name string
		v    *kversion.Versions
	}{
		{"0.11", kversion.V0_11_0()}, // first with record batch v2
		{"2.1", kversion.V2_1_0()},   // Sarama's default
		{"3.0", kversion.V3_0_0()},
		{"latest", kversion.Stable()},
	} {
		t.Run(era.name, func(t *testing.T) {
			topic := "era-" + era.name
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			prod := newClient(t, srv.Addr(), kgo.MaxVersions(era.v), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
			for i := 0; i < 50; i++ {
				if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(fmt.Sprintf("%s-%d", era.name, i))}).FirstErr(); err != nil {
					t.Fatalf("produce: %v", err)
				}
			}
			cons := newClient(t, srv.Addr(), kgo.MaxVersions(era.v), kgo.ConsumeTopics(topic), kgo.ConsumerGroup("group-"+era.name),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
			got := map[string]bool{}
			for len(got) < 50 && ctx.Err() == nil {
				fs := cons.PollFetches(ctx)
				for _, e := range fs.Errors() {
					t.Fatalf("fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
				}
				fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
			}
			for i := 0; i < 50; i++ {
				if v := fmt.Sprintf("%s-%d", era.name, i); !got[v] {
					t.Fatalf("record %s not consumed (%d of 50)", v, len(got))
				}
			}
			if err := cons.CommitUncommittedOffsets(ctx); err != nil {
				t.Fatalf("commit: %v", err)
			}
		})
	}
}
