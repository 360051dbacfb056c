package server

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// On three brokers a config change sent to any broker goes through the Raft
// metadata and reaches every replica's log without a restart;
// min.insync.replicas is checked against the replication factor; and
// DeleteRecords on the leader moves the followers' log start too.
func TestClusterAlterConfigsAndDeleteRecords(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	tb.createTopic("ca", 1, 3, 1)
	cl := newClient(t, tb.addrs()[1], kgo.RequiredAcks(kgo.AllISRAcks()))
	adm := kadm.NewClient(cl)

	if r := alterOne(t, adm, "ca", set("max.message.bytes", "4096"), set("min.insync.replicas", "2")); r.Err != nil {
		t.Fatalf("alter: %v %s", r.Err, r.ErrMessage)
	}
	tb.waitFor("max.message.bytes on every replica", 20*time.Second, func() bool {
		for _, s := range tb.srvs {
			l, err := s.Topics().Partition("ca", 0)
			if err != nil || l.Config().MaxBatchBytes != 4096 {
				return false
			}
		}
		return true
	})
	if v, _ := describeTopicConfig(t, adm, "ca", "min.insync.replicas"); v != "2" {
		t.Fatalf("min.insync.replicas = %s", v)
	}
	if r := alterOne(t, adm, "ca", set("min.insync.replicas", "4")); !errors.Is(r.Err, kerr.InvalidConfig) {
		t.Fatalf("min.insync.replicas above the replication factor: %v", r.Err)
	}

	produceRecords(t, cl, "ca", 50)
	if r := deleteRecords(t, adm, "ca", 20); r.Err != nil || r.LowWatermark != 20 {
		t.Fatalf("delete records: %+v", r)
	}
	// DescribeLogDirs: each broker reports only the partitions it hosts.
	cl2 := newClient(t, tb.addrs()[0])
	tb.createTopic("one", 1, 1, 1)
	dirs, err := kadm.NewClient(cl2).DescribeAllLogDirs(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	holders := map[string]int{}
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) { holders[p.Topic]++ })
	})
	if holders["one"] != 1 || holders["ca"] != 3 {
		t.Fatalf("log dir replicas per topic: %v", holders)
	}
	tb.waitFor("log start 20 on every replica", 20*time.Second, func() bool {
		for _, s := range tb.srvs {
			l, err := s.Topics().Partition("ca", 0)
			if err != nil || l.StartOffset() != 20 {
				return false
			}
		}
		return true
	})
}
