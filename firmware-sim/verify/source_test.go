package verify

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/firmware-sim/reading"
	"github.com/tributary-io/tributary/firmware-sim/summary"
	"github.com/tributary-io/tributary/internal/testkit/coretest"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// record builds a stored record the way the edge does.
func record(t *testing.T, dev string, seq uint64, e reading.Encoding) recordbatch.Record {
	t.Helper()
	v, err := reading.Encode(reading.Reading{Device: dev, Seq: seq, TsMs: 1763900000000 + int64(seq), Temp: 20}, e)
	if err != nil {
		t.Fatal(err)
	}
	return recordbatch.Record{Timestamp: 1763900000000 + int64(seq), Key: []byte(dev), Value: v,
		Headers: []recordbatch.RecordHeader{
			{Key: HeaderContentType, Value: []byte(e.ContentType())},
			{Key: "mqtt-topic", Value: []byte("sensors/" + dev + "/reading")},
			{Key: HeaderDevice, Value: []byte(dev)}}}
}

// plantedStream is three devices in mixed encodings with one loss, one
// duplicate at the very end, a bad record and a record whose key lies.
func plantedStream(t *testing.T) ([]recordbatch.Record, *summary.Summary) {
	var recs []recordbatch.Record
	encs := reading.Encodings
	for i, dev := range []string{"dev-a", "dev-b", "dev-c"} {
		for seq := uint64(10); seq < 60; seq++ {
			if dev == "dev-b" && seq == 33 {
				continue // lost
			}
			recs = append(recs, record(t, dev, seq, encs[(i+int(seq))%len(encs)]))
		}
	}
	bad := record(t, "dev-a", 0, reading.CBOR)
	bad.Value = []byte{0xff, 0x01}
	liar := record(t, "dev-c", 59, reading.JSON)
	liar.Key = []byte("dev-a") // keyed to another device: stays in dev-a's partition
	recs = append(recs, bad, record(t, "dev-a", 42, reading.SenMLJSON), liar)
	s := &summary.Summary{Devices: []summary.Device{
		{ID: "dev-a", FirstSeq: 10, NextSeq: 60}, {ID: "dev-b", FirstSeq: 10, NextSeq: 60}, {ID: "dev-c", FirstSeq: 10, NextSeq: 60}}}
	return recs, s
}

func checkPlanted(t *testing.T, c *Checker) {
	t.Helper()
	r := c.Report()
	if r.Expected != 150 || r.Lost != 1 || r.Duplicated != 2 || r.Undecodable != 1 || r.KeyMismatch != 1 {
		t.Fatalf("report %+v", r)
	}
	if r.Devices[1].LostSeqs[0] != (summary.Range{From: 33, To: 33}) {
		t.Fatalf("dev-b lost %v", r.Devices[1].LostSeqs)
	}
	if r.Devices[0].Duplicates[0].Seq != 42 || r.Devices[2].Duplicates[0].Seq != 59 {
		t.Fatalf("duplicates %+v %+v", r.Devices[0].Duplicates, r.Devices[2].Duplicates)
	}
	if r.Verdict(false, false) == nil {
		t.Fatal("planted faults passed")
	}
}

// TestConsumeKafkaFromTributaryCore runs verify's consumer against the
// Tributary core broker on loopback.
func TestConsumeKafkaFromTributaryCore(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, server.Config{KafkaAddr: "127.0.0.1:0", DefaultPartitions: 3}, nil)

	recs, s := plantedStream(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.DefaultProduceTopic("sensors"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range recs {
		kr := &kgo.Record{Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(r.Timestamp)}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		cl.Produce(ctx, kr, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// One reading is lost, so the consumer waits for it until its timeout
	// (shorter under -short, with polls and progress lines as often).
	wait, every, idle := 5*time.Second, time.Second, time.Duration(0)
	if testing.Short() {
		wait, every, idle = 2*time.Second, 300*time.Millisecond, 300*time.Millisecond
	}
	c := NewChecker(s)
	short, cancelShort := context.WithTimeout(ctx, wait)
	var progress bytes.Buffer
	st, err := ConsumeKafka(short, KafkaOptions{Brokers: []string{srv.Addr()}, Topic: "sensors", Logger: quiet,
		Progress: &progress, ProgressEvery: every, Idle: idle}, c)
	cancelShort()
	if !strings.Contains(progress.String(), "1 readings still missing") {
		t.Errorf("progress lines: %q", progress.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != int64(len(recs)) || st.Complete {
		t.Fatalf("stats %+v, want %d records and incomplete (one lost)", st, len(recs))
	}
	checkPlanted(t, c)

	// With the loss removed from the expectation the consumer stops by
	// itself once caught up, and still sees the late duplicates.
	s.Devices[1].DroppedSeqs = summary.Ranges{{From: 33, To: 33}}
	c = NewChecker(s)
	st, err = ConsumeKafka(ctx, KafkaOptions{Brokers: []string{srv.Addr()}, Topic: "sensors", Logger: quiet, Idle: time.Minute}, c)
	if err != nil || !st.Complete || ctx.Err() != nil {
		t.Fatalf("second consume: %+v, %v", st, err)
	}
	if r := c.Report(); r.Lost != 0 || r.Duplicated != 2 {
		t.Fatalf("second report %+v", r)
	}

	// A start offset skips what lies before it in every partition.
	c = NewChecker(nil)
	st, err = ConsumeKafka(ctx, KafkaOptions{Brokers: []string{srv.Addr()}, Topic: "sensors", StartOffset: 1 << 20, Logger: quiet, Idle: 500 * time.Millisecond}, c)
	if err != nil || st.Records != 0 {
		t.Fatalf("consume from far offset: %+v, %v", st, err)
	}
}

func TestReadLogsOfAStoppedNode(t *testing.T) {
	dir := t.TempDir()
	store, err := meta.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	topics, err := storage.OpenTopics(filepath.Join(dir, "logs"), store, storage.LogConfig{SegmentBytes: 8192}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := topics.Create("sensors", 2, storage.LogConfig{}); err != nil {
		t.Fatal(err)
	}
	recs, s := plantedStream(t)
	// dev-a's records (and the liar) in partition 0, the rest in 1, in
	// batches of 7 so reads start in the middle of batches.
	parts := map[int32][]recordbatch.Record{}
	for _, r := range recs {
		p := int32(1)
		if string(r.Key) == "dev-a" {
			p = 0
		}
		parts[p] = append(parts[p], r)
	}
	for p, rs := range parts {
		l, err := topics.Partition("sensors", p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(rs); i += 7 {
			b, err := recordbatch.Build(rs[i:min(i+7, len(rs))], recordbatch.NoProducer)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(context.Background(), b, storage.AppendOptions{LeaderEpoch: -1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := topics.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	readChunk = 600 // force many reads, most starting inside a batch
	defer func() { readChunk = 1 << 20 }()
	c := NewChecker(s)
	n, err := ReadLogs(dir, "sensors", c, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(recs)) {
		t.Fatalf("read %d records, want %d", n, len(recs))
	}
	checkPlanted(t, c)

	if _, err := ReadLogs(dir, "nope", NewChecker(nil), quiet); err == nil {
		t.Fatal("unknown stream read without error")
	}

	// A running node holds the metadata lock: the reader says so, in time.
	held, err := meta.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := ReadLogs(dir, "sensors", NewChecker(nil), quiet); err == nil || !strings.Contains(err.Error(), "stop the node first") {
		t.Fatalf("read of a locked data dir: %v", err)
	}
}
