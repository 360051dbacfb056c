package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

// storedCodecs lists the codecs of partition 0's stored batches.
func storedCodecs(t *testing.T, srv *Server, topic string) []int {
	t.Helper()
	l, err := srv.Topics().Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for off := l.StartOffset(); off < l.NextOffset(); {
		b, err := l.Read(off, 1<<20, -1)
		if err != nil {
			t.Fatal(err)
		}
		err = recordbatch.Split(b, func(h recordbatch.Header, _ []byte) error {
			out = append(out, h.Compression())
			off = h.NextOffset()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// A topic's compression.type, set at run time, recompresses zstd batches
// (what the bridge forwards) on append: a stock kafkajs consumer, which has
// no zstd, reads them. "producer" keeps the producer's codec.
func TestBrokerSideCompressionServesKafkajs(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Groups.InitialRebalanceDelay = -1
	srv := startServer(t, cfg)
	prod := newClient(t, srv.Addr(), kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.DefaultProduceTopic("zs"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, prod, "zs", 1, nil)
	adm := kadm.NewClient(prod)
	produce := func(from, n int) {
		var recs []*kgo.Record
		for i := from; i < from+n; i++ {
			recs = append(recs, &kgo.Record{Value: []byte("reading " + strconv.Itoa(i))})
		}
		if err := prod.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 10)
	if r := alterOne(t, adm, "zs", set("compression.type", "gzip")); r.Err != nil {
		t.Fatalf("alter: %v %s", r.Err, r.ErrMessage)
	}
	if v, src := describeTopicConfig(t, adm, "zs", "compression.type"); v != "gzip" || src != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("compression.type = %s (%v)", v, src)
	}
	produce(10, 10)
	codecs := storedCodecs(t, srv, "zs")
	if len(codecs) != 2 || codecs[0] != recordbatch.CompressionZstd || codecs[1] != recordbatch.CompressionGzip {
		t.Fatalf("stored codecs %v, want [zstd gzip]", codecs)
	}
	if r := alterOne(t, adm, "zs", set("compression.type", "brotli")); r.Err == nil {
		t.Fatal("compression.type=brotli accepted")
	}

	// kafkajs reads a topic written in zstd only under compression.type=gzip.
	createTopic(t, prod, "zs-js", 1, map[string]string{"compression.type": "gzip"})
	var recs []*kgo.Record
	for i := 0; i < 200; i++ {
		recs = append(recs, &kgo.Record{Topic: "zs-js", Value: []byte(fmt.Sprintf("reading %d", i))})
	}
	if err := prod.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, c := range storedCodecs(t, srv, "zs-js") {
		if c != recordbatch.CompressionGzip {
			t.Fatalf("zs-js stored codec %d", c)
		}
	}
	if d := os.Getenv("KAFKAJS_DIR"); d != "" {
		t.Setenv("NODE_PATH", filepath.Join(d, "node_modules"))
	}
	out := runClient(t, []string{"node", "-e", "require('kafkajs')"}, "node", "testdata/kafkajs_consume.js", srv.Addr(), "zs-js", "200")
	t.Logf("kafkajs: %s", out)
}
