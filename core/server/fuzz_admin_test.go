package server

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// FuzzAdminDispatch is FuzzDispatch seeded with the admin requests of issue
// 17 (AlterConfigs, IncrementalAlterConfigs, DeleteRecords, DescribeLogDirs,
// DescribeCluster) against a broker holding a topic with records: no input
// may panic, and every answer is a well-formed frame for its correlation id.
func FuzzAdminDispatch(f *testing.F) {
	cfg := testConfig(f.TempDir())
	cfg.HTTPAddr = ""
	cfg.MaxPartitions = 4
	cfg.DefaultPartitions = 1
	srv, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })
	if err := srv.Topics().Create("fuzz", 1, srv.cfg.Log); err != nil {
		f.Fatal(err)
	}
	batch, err := recordbatch.Build([]recordbatch.Record{{Timestamp: 1, Key: []byte("k"), Value: []byte("v")}, {Timestamp: 2, Value: []byte("w")}}, recordbatch.NoProducer)
	if err != nil {
		f.Fatal(err)
	}
	l, _ := srv.Topics().Partition("fuzz", 0)
	for range 5 {
		if _, err := l.Append(context.Background(), batch, storage.AppendOptions{}); err != nil {
			f.Fatal(err)
		}
	}

	ac := kmsg.NewPtrAlterConfigsRequest()
	ac.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "fuzz",
		Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("100000")}}}}
	iac := kmsg.NewPtrIncrementalAlterConfigsRequest()
	iac.Version = 1
	iac.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "fuzz",
		Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{
			{Name: "cleanup.policy", Op: kmsg.IncrementalAlterConfigOpAppend, Value: kmsg.StringPtr("compact")},
			{Name: "segment.bytes", Op: kmsg.IncrementalAlterConfigOpSet, Value: kmsg.StringPtr("4096")},
			{Name: "max.message.bytes", Op: kmsg.IncrementalAlterConfigOpDelete}}}}
	dr := kmsg.NewPtrDeleteRecordsRequest()
	dr.Version = 2
	dr.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "fuzz", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: 3}}}}
	dld := kmsg.NewPtrDescribeLogDirsRequest()
	dld.Version = 4
	dcl := kmsg.NewPtrDescribeClusterRequest()
	dcl.Version = 1
	for _, r := range []kmsg.Request{ac, iac, dr, dld, dcl} {
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
