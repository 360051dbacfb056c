package server

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

// FuzzDispatch feeds arbitrary frames (size prefix stripped) to the request
// dispatcher of a real broker: it must never panic, and whatever it answers
// must be a well-formed response frame for the same correlation id.
func FuzzDispatch(f *testing.F) {
	cfg := testConfig(f.TempDir())
	cfg.HTTPAddr = ""
	cfg.MaxPartitions = 4
	cfg.DefaultPartitions = 1
	srv, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })

	batch, err := recordbatch.Build([]recordbatch.Record{{Timestamp: 1, Key: []byte("k"), Value: []byte("v")}}, recordbatch.NoProducer)
	if err != nil {
		f.Fatal(err)
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 9
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("fuzz")}}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.MaxWaitMillis, fetch.MinBytes = 11, 50, 1
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "fuzz", Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 1 << 20}}}}
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Version = 5
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "made", NumPartitions: 2, ReplicationFactor: 1,
		Configs: []kmsg.CreateTopicsRequestTopicConfig{{Name: "retention.ms", Value: kmsg.StringPtr("1000")}}}}
	dc := kmsg.NewPtrDescribeConfigsRequest()
	dc.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "fuzz"}}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 5
	lo.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "fuzz", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Timestamp: -1}}}}
	av := apiVersions(3)
	for _, r := range []kmsg.Request{av, md, produceReq(1, "fuzz", 0, batch), fetch, ct, dc, lo, kmsg.NewPtrInitProducerIDRequest()} {
		f.Add(kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, r, 42)[4:])
	}

	f.Fuzz(func(t *testing.T, frame []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		resp, err := srv.handleFrame(ctx, &clientConn{remote: "fuzz"}, frame)
		if err != nil || resp == nil {
			return
		}
		if len(resp) < 8 || int(binary.BigEndian.Uint32(resp)) != len(resp)-4 {
			t.Fatalf("response frame size prefix %x does not match %d bytes", resp[:4], len(resp)-4)
		}
		if got, want := binary.BigEndian.Uint32(resp[4:]), binary.BigEndian.Uint32(frame[4:]); got != want {
			t.Fatalf("correlation id %d, want %d", got, want)
		}
	})
}
