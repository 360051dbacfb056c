package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
)

// localPartitionDirs lists the partitions of topic that have a directory in
// the broker's log dir.
func localPartitionDirs(t testing.TB, cfg Config, topic string) []int32 {
	return testkit.PartitionDirs(t, filepath.Join(cfg.DataDir, "logs"), topic)
}

// assignedTo lists the partitions of topic whose replica set includes the
// broker, as its own metadata says.
func assignedTo(s *Server, topic string) []int32 {
	out := []int32{}
	t, ok := s.Cluster().Topic(topic)
	if !ok {
		return out
	}
	for _, p := range t.Partitions {
		if slices.Contains(p.Replicas, s.cfg.NodeID) {
			out = append(out, p.Partition)
		}
	}
	return out
}

// placementHolds reports whether, on every running broker, the partition
// directories of each topic are exactly those the metadata assigns to it.
func (tb *testBrokers) placementHolds(topics ...string) bool {
	for i, s := range tb.srvs {
		if s == nil {
			continue
		}
		for _, topic := range topics {
			if !slices.Equal(localPartitionDirs(tb.t, tb.cfgs[i], topic), assignedTo(s, topic)) {
				return false
			}
		}
	}
	return true
}

// placementReport describes each broker's directories against its
// assignment, for a failure message.
func (tb *testBrokers) placementReport(topics ...string) string {
	var b strings.Builder
	for i, s := range tb.srvs {
		for _, topic := range topics {
			fmt.Fprintf(&b, "\n  broker %d %s: dirs %v, assigned %v", i+1, topic,
				localPartitionDirs(tb.t, tb.cfgs[i], topic), assignedTo(s, topic))
		}
	}
	return b.String()
}

func (tb *testBrokers) waitPlacement(what string, topics ...string) {
	tb.t.Helper()
	if !testkit.Poll(20*time.Second, func() bool { return tb.placementHolds(topics...) }) {
		tb.t.Fatalf("%s: partition dirs do not match the assignment:%s", what, tb.placementReport(topics...))
	}
}

// restart closes broker i and starts it again on the same data dir, with
// change applied to its data while it is down (nil: none).
func (tb *testBrokers) restart(i int, change func(cfg Config)) *Server {
	tb.t.Helper()
	if err := tb.srvs[i].Close(); err != nil {
		tb.t.Fatalf("close broker %d: %v", i+1, err)
	}
	if change != nil {
		change(tb.cfgs[i])
	}
	srv, err := Start(tb.cfgs[i], clusterTestLogger(tb.t), nil)
	if err != nil {
		tb.t.Fatalf("restart broker %d: %v", i+1, err)
	}
	tb.t.Cleanup(func() { srv.Close() })
	tb.srvs[i] = srv
	return srv
}

// TestBrokersStoreOnlyTheirReplicas runs three brokers with an RF=1 and an
// RF=2 topic: each broker creates on disk exactly the partitions whose
// replica set includes it, answers NOT_LEADER_OR_FOLLOWER for the others
// without creating them, grows with CreatePartitions, deletes a partition
// the metadata does not assign to it (data kept from before placement) once
// its metadata is current and not before, keeps all that over restarts, and
// deletes everything of a deleted topic.
func TestBrokersStoreOnlyTheirReplicas(t *testing.T) {
	t.Parallel()
	tb := startTestCluster(t, 3)
	addrs := tb.addrs()
	tb.createTopic("one", 6, 1, 1)
	tb.createTopic("two", 6, 2, 1)
	tb.waitPlacement("after create", "one", "two")
	for topic, rf := range map[string]int{"one": 1, "two": 2} {
		total := 0
		for _, s := range tb.srvs {
			total += len(assignedTo(s, topic))
		}
		if total != 6*rf {
			t.Fatalf("%s: %d replicas over the brokers, want %d:%s", topic, total, 6*rf, tb.placementReport(topic))
		}
	}

	// Every partition takes writes and serves them back.
	ctx := testkit.Context(t, 2*time.Minute)
	prod := newClient(t, addrs[0], kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for _, topic := range []string{"one", "two"} {
		for p := range int32(6) {
			for i := range 10 {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%s/%d/%d", topic, p, i)})
			}
		}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cons := newClient(t, addrs[1], kgo.ConsumeTopics("one", "two"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	seen := map[string]bool{}
	for len(seen) < len(recs) && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if len(seen) != len(recs) {
		t.Fatalf("consumed %d distinct records, want %d", len(seen), len(recs))
	}

	// A broker asked about a partition it does not host refuses, and the
	// partition stays absent from its disk.
	var stranger *Server
	var strangerCfg Config
	var foreign int32 = -1
	for i, s := range tb.srvs {
		mine := assignedTo(s, "one")
		for p := range int32(6) {
			if !slices.Contains(mine, p) {
				stranger, strangerCfg, foreign = s, tb.cfgs[i], p
				break
			}
		}
		if stranger != nil {
			break
		}
	}
	checkRefusesForeignPartition(t, stranger, "one", foreign)
	if dirs := localPartitionDirs(t, strangerCfg, "one"); slices.Contains(dirs, foreign) {
		t.Fatalf("broker %d created one-%d after requests for it: dirs %v", stranger.cfg.NodeID, foreign, dirs)
	}
	checkDescribeLogDirs(t, tb, "one", "two")

	// More partitions land only on the brokers they are assigned to.
	cp := kmsg.NewPtrCreatePartitionsRequest()
	cpt := kmsg.NewCreatePartitionsRequestTopic()
	cpt.Topic, cpt.Count = "two", 9
	cp.Topics, cp.TimeoutMillis = append(cp.Topics, cpt), 10000
	if resp := dialRaw(t, addrs[0]).roundTrip(cp).(*kmsg.CreatePartitionsResponse); resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions: %v", kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	tb.waitTopic("two")
	tb.waitPlacement("after create partitions", "one", "two")

	// Broker 3 restarted with data of a partition not assigned to it (as a
	// broker from before placement kept every partition): while it cannot
	// reach the cluster its metadata may be stale, and the data stays; once
	// it has caught up, the data goes.
	victim := 2
	var stray int32 = -1
	for p := range int32(6) {
		if !slices.Contains(assignedTo(tb.srvs[victim], "one"), p) {
			stray = p
			break
		}
	}
	tb.faults.Isolate(tb.cfgs[victim].NodeID)
	srv := tb.restart(victim, func(cfg Config) { addStrayPartition(t, cfg, "one", stray) })
	strayDir := filepath.Join(tb.cfgs[victim].DataDir, "logs", fmt.Sprintf("one-%d", stray))
	for deadline := time.Now().Add(testkit.Watch(2 * time.Second)); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if srv.Cluster().MetadataCurrent() {
			t.Fatal("an isolated broker calls its metadata current")
		}
		if _, err := os.Stat(strayDir); err != nil {
			t.Fatalf("stray data deleted on metadata that was not current: %v", err)
		}
	}
	tb.faults.Heal(tb.cfgs[victim].NodeID)
	testkit.Eventually(t, 30*time.Second, "the restarted broker to delete the partition it does not replicate", func() bool {
		_, err := os.Stat(strayDir)
		return os.IsNotExist(err)
	})
	tb.waitPlacement("after a restart with stray data", "one", "two")
	// The restarted broker still serves its own partitions' old records.
	tb.waitTopic("one")
	cons2 := newClient(t, srv.Addr(), kgo.ConsumeTopics("one"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	got := 0
	for got < 60 && ctx.Err() == nil {
		got += cons2.PollFetches(ctx).NumRecords()
	}
	if got != 60 {
		t.Fatalf("read %d of one's 60 records after the restart", got)
	}

	// A restart of another broker keeps its placement.
	tb.restart(0, nil)
	tb.waitTopic("two")
	tb.waitPlacement("after a plain restart", "one", "two")

	// A deleted topic leaves no directory anywhere.
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TopicNames, del.TimeoutMillis = []string{"two"}, 10000
	if resp := dialRaw(t, tb.addrs()[1]).roundTrip(del).(*kmsg.DeleteTopicsResponse); resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete topic: %v", kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	testkit.Eventually(t, 20*time.Second, "every broker to delete two's partitions", func() bool {
		for _, cfg := range tb.cfgs {
			if len(localPartitionDirs(t, cfg, "two")) > 0 {
				return false
			}
		}
		return true
	})
	tb.waitPlacement("after delete", "one")
}

// addStrayPartition stores partition p of topic in a stopped broker's data
// dir, with a record in it.
func addStrayPartition(t *testing.T, cfg Config, topic string, p int32) {
	t.Helper()
	store, err := meta.Open(filepath.Join(cfg.DataDir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	topics, err := storage.OpenTopics(filepath.Join(cfg.DataDir, "logs"), store, cfg.Log, testkit.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer topics.Close()
	if err := topics.HostPartition(topic, p); err != nil {
		t.Fatal(err)
	}
	l, err := topics.Partition(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), buildBatch(t, 1, -1, 0, 10), storage.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

// checkRefusesForeignPartition sends Produce, Fetch, ListOffsets and
// DeleteRecords for a partition the broker does not host: each answers
// NOT_LEADER_OR_FOLLOWER.
func checkRefusesForeignPartition(t *testing.T, s *Server, topic string, p int32) {
	t.Helper()
	c := dialRaw(t, s.Addr())
	want := kerr.NotLeaderForPartition.Code
	if got := produceOne(t, c, -1, topic, p, buildBatch(t, 1, -1, 0, 10)).ErrorCode; got != want {
		t.Errorf("produce: %v", kerr.ErrorForCode(got))
	}

	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.MaxWaitMillis, fetch.MaxBytes = 11, 0, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.PartitionMaxBytes = p, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	if got := c.roundTrip(fetch).(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; got != want {
		t.Errorf("fetch: %v", kerr.ErrorForCode(got))
	}

	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 4
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition, lp.Timestamp, lp.CurrentLeaderEpoch = p, -1, -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	if got := c.roundTrip(lo).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode; got != want {
		t.Errorf("list offsets: %v", kerr.ErrorForCode(got))
	}

	dr := kmsg.NewPtrDeleteRecordsRequest()
	dt := kmsg.NewDeleteRecordsRequestTopic()
	dt.Topic = topic
	dp := kmsg.NewDeleteRecordsRequestTopicPartition()
	dp.Partition, dp.Offset = p, 0
	dt.Partitions = append(dt.Partitions, dp)
	dr.Topics, dr.TimeoutMillis = append(dr.Topics, dt), 5000
	if got := c.roundTrip(dr).(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0].ErrorCode; got != want {
		t.Errorf("delete records: %v", kerr.ErrorForCode(got))
	}
}

// checkDescribeLogDirs asks every broker for its log dirs: each lists
// exactly the partitions assigned to it.
func checkDescribeLogDirs(t *testing.T, tb *testBrokers, topics ...string) {
	t.Helper()
	for _, s := range tb.srvs {
		resp := dialRaw(t, s.Addr()).roundTrip(kmsg.NewPtrDescribeLogDirsRequest()).(*kmsg.DescribeLogDirsResponse)
		listed := map[string][]int32{}
		for _, d := range resp.Dirs {
			for _, dt := range d.Topics {
				for _, dp := range dt.Partitions {
					listed[dt.Topic] = append(listed[dt.Topic], dp.Partition)
				}
			}
		}
		for _, topic := range topics {
			got := listed[topic]
			slices.Sort(got)
			if want := assignedTo(s, topic); !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Errorf("broker %d describes %s partitions %v, assigned %v", s.cfg.NodeID, topic, got, want)
			}
		}
	}
}
