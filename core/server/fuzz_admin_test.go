package server

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// FuzzAdminDispatch is FuzzDispatch seeded with the admin requests of issue
// 17 (AlterConfigs, IncrementalAlterConfigs, DeleteRecords, DescribeLogDirs,
// DescribeCluster) against a broker holding a topic with records: no input
// may panic, and every answer is a well-formed frame for its correlation id.
func FuzzAdminDispatch(f *testing.F) {
	srv := fuzzBroker(f)
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
		addSeed(f, r)
	}

	fuzzFrames(f, srv)
}
