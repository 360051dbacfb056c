package server

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
)

// A topic deleted while a broker was down, and created again after it came
// back, must not resurrect that broker's old data: before topic ids the
// restarted broker kept its local logs of the old topic (nothing told it
// the topic had gone) and reused them as the new topic's. Metadata also
// reports a new topic id for the new incarnation.
func TestDeletedTopicNeverReappears(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	tb.createTopic("reborn", 1, 3, 1)
	oldID := metadataTopicID(t, tb.addrs()[0], "reborn")
	ctx := testkit.Context(t, 60*time.Second)
	prod := newClient(t, tb.addrs()[0], kgo.DefaultProduceTopic("reborn"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 50 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{'o', byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	l3, _ := tb.srvs[2].Topics().Partition("reborn", 0)
	tb.waitFor("broker 3 to replicate the old records", 20*time.Second, func() bool { return l3.NextOffset() == 50 })

	if err := tb.srvs[2].Close(); err != nil {
		t.Fatal(err)
	}
	adm := dialRaw(t, tb.addrs()[0])
	dreq := kmsg.NewPtrDeleteTopicsRequest()
	dreq.TopicNames = []string{"reborn"}
	dreq.TimeoutMillis = 10000
	if resp := adm.roundTrip(dreq).(*kmsg.DeleteTopicsResponse); resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete topic: code %d", resp.Topics[0].ErrorCode)
	}
	srv, err := Start(tb.cfgs[2], clusterTestLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tb.srvs[2] = srv
	tb.waitFor("the restarted broker to drop the deleted topic's data", 20*time.Second, func() bool {
		_, ok := srv.Topics().Get("reborn")
		return !ok
	})
	tb.createTopic("reborn", 1, 3, 1)
	if newID := metadataTopicID(t, tb.addrs()[0], "reborn"); newID == oldID {
		t.Errorf("the new incarnation has the old topic id %x", newID)
	}
	// A new client: the first one knows the old topic's id, which the
	// cluster now answers with UNKNOWN_TOPIC_ID, as Kafka does.
	prod = newClient(t, tb.addrs()[0], kgo.DefaultProduceTopic("reborn"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 5 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{'n', byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	l3, _ = srv.Topics().Partition("reborn", 0)
	tb.waitFor("broker 3 to hold the new records", 20*time.Second, func() bool { return l3 != nil && l3.NextOffset() == 5 })
	b, err := l3.Read(0, 1<<20, -1)
	if err != nil || len(b) == 0 {
		t.Fatalf("read broker 3's copy: %v", err)
	}
	cons := newClient(t, tb.addrs()[2], kgo.ConsumeTopics("reborn"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < 5 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 5", got)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if r.Value[0] != 'n' {
				t.Fatalf("an old record came back: %q at offset %d", r.Value, r.Offset)
			}
		})
	}
}

func metadataTopicID(t *testing.T, addr, topic string) [16]byte {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp := dialRaw(t, addr).roundTrip(req).(*kmsg.MetadataResponse)
	return resp.Topics[0].TopicID
}
