package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
)

// produceRecords produces n records with the value "v" to topic in one
// batch.
func produceRecords(t *testing.T, cl *kgo.Client, topic string, n int) {
	t.Helper()
	var recs []*kgo.Record
	for range n {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte("v")})
	}
	if err := cl.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d to %s: %v", n, topic, err)
	}
}

// deleteRecords asks to delete topic's partition 0 below offset at (-1:
// the high watermark) and returns that partition's answer.
func deleteRecords(t *testing.T, adm *kadm.Client, topic string, at int64) kadm.DeleteRecordsResponse {
	t.Helper()
	toDelete := kadm.Offsets{}
	toDelete.Add(kadm.Offset{Topic: topic, Partition: 0, At: at})
	rs, err := adm.DeleteRecords(ctxT(t), toDelete)
	if err != nil {
		t.Fatalf("delete records of %s below %d: %v", topic, at, err)
	}
	r, _ := rs.Lookup(topic, 0)
	return r
}

// ctxT is a test's context for requests that should take well under 20 s.
func ctxT(t *testing.T) context.Context { return testkit.Context(t, 20*time.Second) }

func describeTopicConfig(t *testing.T, adm *kadm.Client, topic, name string) (string, kmsg.ConfigSource) {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctxT(t), topic)
	if err != nil {
		t.Fatalf("describe configs: %v", err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs of %s: %v %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == name {
			return c.MaybeValue(), c.Source
		}
	}
	t.Fatalf("config %s not described", name)
	return "", 0
}

func alterOne(t *testing.T, adm *kadm.Client, topic string, ac ...kadm.AlterConfig) kadm.AlterConfigsResponse {
	t.Helper()
	rs, err := adm.AlterTopicConfigs(ctxT(t), ac, topic)
	if err != nil {
		t.Fatalf("alter configs: %v", err)
	}
	r, err := rs.On(topic, nil)
	if err != nil {
		t.Fatalf("alter configs: %v", err)
	}
	return r
}

func set(k, v string) kadm.AlterConfig {
	return kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v}
}

// Topic configs change at run time through IncrementalAlterConfigs and
// AlterConfigs: the logs use them at once (a batch over the new
// max.message.bytes is refused), DescribeConfigs shows them, a restart keeps
// them, and bad input gets Kafka's INVALID_CONFIG with its messages.
func TestAlterTopicConfigs(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.Log.RetentionAge = 7 * 24 * time.Hour // so that the topic's -1 differs from the default
	srv := startServer(t, cfg)
	cl := newClient(t, srv.Addr(), kgo.ProducerBatchMaxBytes(1<<20), kgo.RecordRetries(1),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)
	createTopic(t, cl, "cfg", 2, map[string]string{"retention.ms": "-1"})

	if r := alterOne(t, adm, "cfg", set("max.message.bytes", "200"), set("retention.bytes", "123456")); r.Err != nil {
		t.Fatalf("alter: %v %s", r.Err, r.ErrMessage)
	}
	if v, src := describeTopicConfig(t, adm, "cfg", "max.message.bytes"); v != "200" || src != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("max.message.bytes = %s (%v)", v, src)
	}
	// The earlier retention.ms=-1 survives an incremental change.
	if v, _ := describeTopicConfig(t, adm, "cfg", "retention.ms"); v != "-1" {
		t.Fatalf("retention.ms = %s after an incremental alter", v)
	}
	for p := int32(0); p < 2; p++ {
		l, _ := srv.Topics().Partition("cfg", p)
		if c := l.Config(); c.MaxBatchBytes != 200 || c.RetentionBytes != 123456 {
			t.Fatalf("partition %d log config %+v", p, c)
		}
	}
	big := &kgo.Record{Topic: "cfg", Partition: 0, Value: []byte(strings.Repeat("x", 1000))}
	if err := cl.ProduceSync(ctxT(t), big).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("produce over the new limit: %v", err)
	}

	// Kafka's refusals, each leaving the configs as they were.
	for _, tc := range []struct {
		ac   kadm.AlterConfig
		code error
		msg  string
	}{
		{set("no.such.config", "1"), kerr.InvalidConfig, "Unknown topic config name: no.such.config"},
		{set("retention.ms", "soon"), kerr.InvalidConfig, "Invalid value soon for configuration retention.ms"},
		{set("cleanup.policy", "sometimes"), kerr.InvalidConfig, "Invalid value sometimes for configuration cleanup.policy"},
		{kadm.AlterConfig{Op: kadm.AppendConfig, Name: "retention.ms", Value: kmsg.StringPtr("5")}, kerr.InvalidConfig, "append is not allowed"},
	} {
		r := alterOne(t, adm, "cfg", tc.ac)
		if !errors.Is(r.Err, tc.code) || !strings.Contains(r.ErrMessage, tc.msg) {
			t.Errorf("%s=%v: %v %q, want %v %q", tc.ac.Name, tc.ac.Value, r.Err, r.ErrMessage, tc.code, tc.msg)
		}
	}
	if r := alterOne(t, adm, "nope", set("retention.ms", "1000")); !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", r.Err)
	}

	// validate_only checks without changing.
	rs, err := adm.ValidateAlterTopicConfigs(ctxT(t), []kadm.AlterConfig{set("max.message.bytes", "999")}, "cfg")
	if err != nil || rs[0].Err != nil {
		t.Fatalf("validate only: %v %v", err, rs)
	}
	if v, _ := describeTopicConfig(t, adm, "cfg", "max.message.bytes"); v != "200" {
		t.Fatalf("validate_only changed max.message.bytes to %s", v)
	}

	// APPEND to a list config, then DELETE back to the default.
	app := kadm.AlterConfig{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kmsg.StringPtr("compact")}
	if r := alterOne(t, adm, "cfg", app); r.Err != nil {
		t.Fatalf("append cleanup.policy: %v %s", r.Err, r.ErrMessage)
	}
	if v, _ := describeTopicConfig(t, adm, "cfg", "cleanup.policy"); v != "compact" {
		t.Fatalf("cleanup.policy = %s", v)
	}
	if r := alterOne(t, adm, "cfg", kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "max.message.bytes"}); r.Err != nil {
		t.Fatalf("delete: %v", r.Err)
	}
	if err := cl.ProduceSync(ctxT(t), big).FirstErr(); err != nil {
		t.Fatalf("produce after the limit went back to default: %v", err)
	}

	// AlterConfigs (non-incremental) replaces the whole set.
	rs, err = adm.AlterTopicConfigsState(ctxT(t), []kadm.AlterConfig{set("segment.bytes", "65536")}, "cfg")
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter configs state: %v %v", err, rs)
	}
	if v, src := describeTopicConfig(t, adm, "cfg", "retention.ms"); src == kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("retention.ms = %s still dynamic after AlterConfigs replaced the set", v)
	}

	// A restart keeps the configs.
	srv.Close()
	srv = startServer(t, cfg)
	cl2 := newClient(t, srv.Addr())
	if v, _ := describeTopicConfig(t, kadm.NewClient(cl2), "cfg", "segment.bytes"); v != "65536" {
		t.Fatalf("segment.bytes after restart = %s", v)
	}
}

// DeleteRecords moves the log start offset inside a segment: consumers start
// there, ListOffsets(earliest) says so, offsets past the high watermark are
// OFFSET_OUT_OF_RANGE, and a restart keeps it.
func TestDeleteRecords(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	srv := startServer(t, cfg)
	cl := newClient(t, srv.Addr())
	adm := kadm.NewClient(cl)
	createTopic(t, cl, "dr", 1, nil)
	for range 10 {
		produceRecords(t, cl, "dr", 10)
	}
	if r := deleteRecords(t, adm, "dr", 45); r.Err != nil || r.LowWatermark != 45 {
		t.Fatalf("delete records: %+v", r)
	}
	starts, err := adm.ListStartOffsets(ctxT(t), "dr")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("dr", 0); o.Offset != 45 {
		t.Fatalf("start offset %d", o.Offset)
	}
	if r := deleteRecords(t, adm, "dr", 101); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("beyond the high watermark: %+v", r)
	}
	raw := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = "nope"
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Offset = 1
	rt.Partitions = append(rt.Partitions, rp)
	raw.Topics = append(raw.Topics, rt)
	rawResp := dialRaw(t, srv.Addr()).roundTrip(raw).(*kmsg.DeleteRecordsResponse)
	if rawResp.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: %+v", rawResp)
	}

	srv.Close()
	srv = startServer(t, cfg)
	cons := newClient(t, srv.Addr(), kgo.ConsumeTopics("dr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var offs []int64
	for len(offs) < 55 {
		fs := cons.PollFetches(ctxT(t))
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { offs = append(offs, r.Offset) })
	}
	if offs[0] != 45 || offs[len(offs)-1] != 99 || len(offs) != 55 {
		t.Fatalf("consumed offsets %d..%d (%d)", offs[0], offs[len(offs)-1], len(offs))
	}
	// -1 deletes up to the high watermark.
	if r := deleteRecords(t, kadm.NewClient(newClient(t, srv.Addr())), "dr", -1); r.Err != nil || r.LowWatermark != 100 {
		t.Fatalf("delete to the high watermark: %+v", r)
	}
}

// DescribeCluster and DescribeLogDirs through kadm.
func TestDescribeClusterAndLogDirs(t *testing.T) {
	t.Parallel()
	_, cl := startWithTopics(t, 2, "ld")
	adm := kadm.NewClient(cl)
	if err := cl.ProduceSync(ctxT(t), &kgo.Record{Topic: "ld", Partition: 1, Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrDescribeClusterRequest()
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil || resp.ErrorCode != 0 || len(resp.Brokers) != 1 || resp.ControllerID != resp.Brokers[0].NodeID {
		t.Fatalf("describe cluster: %v %+v", err, resp)
	}
	dirs, err := adm.DescribeAllLogDirs(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == "ld" {
				sizes = append(sizes, p.Size)
			}
		})
	})
	if len(sizes) != 2 || (sizes[0] == 0) == (sizes[1] == 0) {
		t.Fatalf("log dir sizes for ld: %v", sizes)
	}
}
